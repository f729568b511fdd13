package vswitch_test

import (
	"net/netip"
	"testing"

	"github.com/tapswitch/tapswitch/arp"
	"github.com/tapswitch/tapswitch/fdb"
	vswitch "github.com/tapswitch/tapswitch/switch"
	"github.com/tapswitch/tapswitch/switch/memport"
)

func ip6(i byte) netip.Addr { return netip.AddrFrom16([16]byte{0xfd, 0, 15: i}) }
func ll6(i byte) netip.Addr { return netip.AddrFrom16([16]byte{0xfe, 0x80, 15: i}) }

var (
	allNodes    = netip.MustParseAddr("ff02::1")
	allNodesMAC = fdb.MAC{0x33, 0x33, 0, 0, 0, 1}
)

// ether6 is an Ethernet frame carrying the IPv6 packet pkt.
func ether6(dst, src fdb.MAC, pkt []byte) []byte {
	f := ether(dst, src, 0x86dd, len(pkt))
	copy(f[14:], pkt)
	return f
}

func ndpPkt(t testing.TB, m arp.NDP) []byte {
	t.Helper()
	b, err := arp.BuildNDP(nil, m, arp.NDPOptions{RouterLifetime: 1800})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// naFrame is an unsolicited NA to all nodes from src claiming target, with
// src as its target link-layer option.
func naFrame(t testing.TB, src fdb.MAC, target netip.Addr) []byte {
	return ether6(allNodesMAC, src, ndpPkt(t, arp.NDP{Type: arp.TypeNeighborAdvertisement, Src: target, Dst: allNodes,
		Target: target, Flags: arp.FlagOverride, LLAddr: src, HasLLAddr: true}))
}

func raFrame(t testing.TB, src fdb.MAC, from netip.Addr) []byte {
	return ether6(allNodesMAC, src, ndpPkt(t, arp.NDP{Type: arp.TypeRouterAdvertisement, Src: from, Dst: allNodes, LLAddr: src, HasLLAddr: true}))
}

// tcp6 is an IPv6 TCP segment header with n bytes of payload (the switch
// reads no further than the next header).
func tcp6(src, dst netip.Addr, n int) []byte {
	p := make([]byte, 60+n)
	p[0], p[6], p[7] = 0x60, 6, 64
	p[4], p[5] = byte((20+n)>>8), byte(20+n)
	s, d := src.As16(), dst.As16()
	copy(p[8:], s[:])
	copy(p[24:], d[:])
	return p
}

// ndpRig: pods p0 and p1 bound to an IPv4 and an IPv6 address each, p2 the
// unbound gateway, p3 a trunk carrying VLAN 10 (unbound).
func ndpRig(t *testing.T, mod func(*vswitch.Config)) *rig {
	return newRig(t, 4, func(c *vswitch.Config) {
		c.ARP.Guard = true
		if mod != nil {
			mod(c)
		}
	}, func(i int, c *vswitch.PortConfig) {
		switch i {
		case 0, 1:
			c.IPs = []netip.Addr{ip4(byte(i + 1)), ip6(byte(i + 1))}
		case 3:
			c.Trunk, c.PVID, c.Allowed = true, 1, []uint16{10}
		}
	})
}

func TestNDPThroughSwitch(t *testing.T) {
	r := ndpRig(t, nil)
	// A pod's NA for its own address floods and is learned.
	if out := r.send(0, naFrame(t, mac(1), ip6(1))); !eq(out, 1, 2, 3) {
		t.Fatalf("own NA left on %v", out)
	}
	if n, ok := r.sw.ARP().Lookup(1, ip6(1), r.clock.Now()); !ok || n.MAC != mac(1) || n.Port != r.ids[0] {
		t.Fatalf("not learned: %+v %v", n, ok)
	}
	// A tagged NS on the trunk is learned in its VLAN, from its option.
	ns := ether6(fdb.MAC{0x33, 0x33, 0xff, 0, 0, 1}, mac(7), ndpPkt(t, arp.NDP{Type: arp.TypeNeighborSolicitation,
		Src: ip6(70), Dst: arp.SolicitedNode(ip6(1)), Target: ip6(1), LLAddr: mac(8), HasLLAddr: true}))
	if out := r.send(3, tagged(ns, 10)); len(out) != 0 {
		t.Fatalf("NS in VLAN 10 left on %v (no other port carries it)", out)
	}
	if n, ok := r.sw.ARP().Lookup(10, ip6(70), r.clock.Now()); !ok || n.MAC != mac(8) {
		t.Fatalf("tagged NS not learned in VLAN 10: %+v %v", n, ok)
	}
	if _, ok := r.sw.ARP().Lookup(1, ip6(70), r.clock.Now()); ok {
		t.Fatal("tagged NS learned in VLAN 1")
	}
	// DAD for another pod's address passes.
	dad := ether6(fdb.MAC{0x33, 0x33, 0xff, 0, 0, 2}, mac(1), ndpPkt(t, arp.NDP{Type: arp.TypeNeighborSolicitation,
		Src: netip.IPv6Unspecified(), Dst: arp.SolicitedNode(ip6(2)), Target: ip6(2)}))
	if out := r.send(0, dad); !eq(out, 1, 2, 3) {
		t.Fatalf("DAD left on %v", out)
	}
	// IPv6 TCP is switched as any frame: learned sources, known unicast.
	r.send(1, ether6(mac(1), mac(2), tcp6(ip6(2), ip6(1), 10)))
	if out := r.send(0, ether6(mac(2), mac(1), tcp6(ip6(1), ip6(2), 1000))); !eq(out, 1) {
		t.Fatalf("TCP left on %v", out)
	}
	if st := r.sw.ARP().Stats(); st.NDPSnooped != 2 || st.NDPGuardDrops != 0 || st.NDPMalformed != 0 {
		t.Fatalf("stats %+v", st)
	}
	for _, p := range r.sw.Ports() {
		if d := p.Counters.Dropped(); d != 0 {
			t.Fatalf("port %s dropped %v", p.Name, p.Counters.DropMap)
		}
	}
}

func TestNDPGuardInSwitch(t *testing.T) {
	r := ndpRig(t, nil)
	r.send(1, naFrame(t, mac(2), ip6(2))) // pod 1 announces itself
	// Pod 0 claims pod 1's address, from its own MAC and then from pod 1's.
	spoofs := [][]byte{naFrame(t, mac(1), ip6(2)), naFrame(t, mac(2), ip6(2))}
	for _, f := range spoofs {
		if out := r.send(0, f); len(out) != 0 {
			t.Fatalf("spoofed NA left on %v", out)
		}
	}
	if n, ok := r.sw.ARP().Lookup(1, ip6(2), r.clock.Now()); !ok || n.MAC != mac(2) || n.Port != r.ids[1] {
		t.Fatalf("pod 1's neighbour entry now %+v %v", n, ok)
	}
	// The forgery with pod 1's MAC did not move that MAC to pod 0.
	if p, ok := r.sw.FDB().Lookup(1, mb(2), r.clock.Now()); !ok || p != r.ids[1] {
		t.Fatalf("pod 1's MAC on port %v (%v)", p, ok)
	}
	c := r.sw.Ports()[0].Counters
	if c.Drops[vswitch.DropNDPGuard] != 2 || c.DropMap["ndp-guard"] != 2 {
		t.Fatalf("guard drops %v", c.DropMap)
	}
	if st := r.sw.ARP().Stats(); st.NDPGuardDrops != 2 {
		t.Fatalf("stats %+v", st)
	}
	// A bad checksum is dropped as malformed and teaches nothing; with a
	// virtio-net header marking it partial, the receiver would not check
	// it, and neither does the switch.
	bad := naFrame(t, mac(1), ip6(1))
	bad[14+42] ^= 0x55
	if out := r.send(0, bad); len(out) != 0 {
		t.Fatalf("bad checksum left on %v", out)
	}
	if c := r.sw.Ports()[0].Counters; c.DropMap["ndp-malformed"] != 1 {
		t.Fatalf("malformed not counted: %v", c.DropMap)
	}
	if _, ok := r.sw.ARP().Lookup(1, ip6(1), r.clock.Now()); ok {
		t.Fatal("learned from a bad checksum")
	}
}

func TestNDPOffloadedChecksum(t *testing.T) {
	r := newRig(t, 2, func(c *vswitch.Config) { c.HeaderLen = vswitch.VnetHdrLen; c.ARP.Guard = true }, func(i int, c *vswitch.PortConfig) {
		c.IPs = []netip.Addr{ip6(byte(i + 1))}
	})
	bad := naFrame(t, mac(1), ip6(1))
	bad[14+42] ^= 0x55
	for _, flags := range []byte{0, 1, 2} {
		h := make([]byte, vswitch.VnetHdrLen)
		if flags == 1 { // NEEDS_CSUM at the ICMPv6 checksum
			vswitch.VnetHdr{Flags: 1, CsumStart: 54, CsumOffset: 2}.Encode(h)
		}
		h[0] = flags
		out := r.send(0, append(h, bad...))
		if want := flags != 0; (len(out) == 1) != want {
			t.Errorf("vnet flags %d: bad checksum left on %v", flags, out)
		}
	}
}

func TestRouterAdvertisementsFromPods(t *testing.T) {
	r := ndpRig(t, nil)
	redirect := ether6(mac(2), mac(1), ndpPkt(t, arp.NDP{Type: arp.TypeRedirect, Src: ll6(1), Dst: ip6(2), Target: ll6(1)}))
	if out := r.send(0, raFrame(t, mac(1), ll6(1))); len(out) != 0 {
		t.Fatalf("a pod's RA left on %v", out)
	}
	if out := r.send(0, redirect); len(out) != 0 {
		t.Fatalf("a pod's redirect left on %v", out)
	}
	if c := r.sw.Ports()[0].Counters; c.Drops[vswitch.DropRAGuard] != 2 {
		t.Fatalf("ra-guard drops %v", c.DropMap)
	}
	// The gateway's RA reaches the pods.
	if out := r.send(2, raFrame(t, mac(9), ll6(9))); !eq(out, 0, 1, 3) {
		t.Fatalf("the gateway's RA left on %v", out)
	}
	// Allowed, a pod's RA floods too.
	cfg := r.sw.ARP().Config()
	cfg.PodRouterAdvertisements = true
	r.sw.ARP().SetConfig(cfg)
	if out := r.send(0, raFrame(t, mac(1), ll6(1))); !eq(out, 1, 2, 3) {
		t.Fatalf("an allowed RA left on %v", out)
	}
	if st := r.sw.ARP().Stats(); st.RAGuardDrops != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestAddPortBindsIPv6(t *testing.T) {
	r := newRig(t, 1, func(c *vswitch.Config) { c.ARP.Guard = true }, nil)
	id, err := r.sw.AddPort(memport.New(), vswitch.PortConfig{Name: "v6", IPs: []netip.Addr{ip6(5)}})
	if err != nil {
		t.Fatal(err)
	}
	in, _ := r.sw.Ingress(id)
	in.Receive([][]byte{naFrame(t, mac(5), ip6(6))})
	if p, _ := r.sw.Port(id); p.Counters.Drops[vswitch.DropNDPGuard] != 1 {
		t.Fatalf("the v6-only port's claim of another address not dropped: %v", p.Counters.DropMap)
	}
}
