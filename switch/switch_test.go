package vswitch_test

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/arp"
	"github.com/tapswitch/tapswitch/fdb"
	vswitch "github.com/tapswitch/tapswitch/switch"
	"github.com/tapswitch/tapswitch/switch/memport"
)

// rig is a switch with in-memory ports, driven by a manual clock.
type rig struct {
	t     *testing.T
	sw    *vswitch.Switch
	clock *vswitch.ManualClock
	ports []*memport.Port
	ids   []fdb.PortID
	in    []*vswitch.Ingress
}

func newRig(t *testing.T, n int, mod func(*vswitch.Config), pcfg func(i int, c *vswitch.PortConfig)) *rig {
	t.Helper()
	cfg := vswitch.DefaultConfig()
	clk := &vswitch.ManualClock{}
	clk.Set(int64(time.Hour))
	cfg.Clock = clk
	if mod != nil {
		mod(&cfg)
	}
	sw, err := vswitch.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, sw: sw, clock: clk}
	for i := range n {
		r.add(i, pcfg)
	}
	return r
}

func (r *rig) add(i int, pcfg func(i int, c *vswitch.PortConfig)) {
	r.t.Helper()
	p := memport.New()
	c := vswitch.PortConfig{Name: "p" + string(rune('0'+i))}
	if pcfg != nil {
		pcfg(i, &c)
	}
	id, err := r.sw.AddPort(p, c)
	if err != nil {
		r.t.Fatal(err)
	}
	in, err := r.sw.Ingress(id)
	if err != nil {
		r.t.Fatal(err)
	}
	r.ports = append(r.ports, p)
	r.ids = append(r.ids, id)
	r.in = append(r.in, in)
}

// send puts frame in on port i and returns which ports it left on.
func (r *rig) send(i int, frame []byte) []int {
	r.t.Helper()
	r.in[i].Receive([][]byte{frame})
	var out []int
	for j, p := range r.ports {
		if n := p.Len(); n > 0 {
			for range n {
				out = append(out, j)
			}
			p.Take()
		}
	}
	return out
}

func mac(i byte) fdb.MAC { return fdb.MAC{0x02, 0, 0, 0, 0, i} }

var bcast = fdb.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func ether(dst, src fdb.MAC, etype uint16, payload int) []byte {
	f := make([]byte, 14+payload)
	copy(f, dst[:])
	copy(f[6:], src[:])
	binary.BigEndian.PutUint16(f[12:], etype)
	return f
}

func ip4(i byte) netip.Addr { return netip.AddrFrom4([4]byte{10, 244, 0, i}) }

func arpFrame(t *testing.T, dst fdb.MAC, op uint16, sha fdb.MAC, spa netip.Addr, tha fdb.MAC, tpa netip.Addr) []byte {
	t.Helper()
	f := ether(dst, sha, 0x0806, arp.BodyLen)
	if err := arp.Build(f[14:], op, sha, spa, tha, tpa); err != nil {
		t.Fatal(err)
	}
	return f
}

func eq(a []int, b ...int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestSameNodeBehaviours pins the same-node behaviours of a learning bridge
// (flood and learn, unicast reply, no flood after warm-up, unknown unicast
// floods, never back out of the ingress port) on a four-port switch.
func TestSameNodeBehaviours(t *testing.T) {
	r := newRig(t, 4, nil, nil)
	// S1: pod1's ARP broadcast floods to the N-1 other ports; pod1 is learned.
	req := arpFrame(t, bcast, 1, mac(1), ip4(1), fdb.MAC{}, ip4(2))
	if out := r.send(0, req); !eq(out, 1, 2, 3) {
		t.Fatalf("S1: ARP request left on %v, want [1 2 3]", out)
	}
	if p, ok := r.sw.FDB().Lookup(1, mb(1), r.clock.Now()); !ok || p != r.ids[0] {
		t.Fatalf("S1: pod1 not learned on port %d: %v %v", r.ids[0], p, ok)
	}
	// S2: pod2's unicast reply goes only to pod1's port; pod2 is learned.
	rep := arpFrame(t, mac(1), 2, mac(2), ip4(2), mac(1), ip4(1))
	if out := r.send(1, rep); !eq(out, 0) {
		t.Fatalf("S2: reply left on %v, want [0]", out)
	}
	if p, ok := r.sw.FDB().Lookup(1, mb(2), r.clock.Now()); !ok || p != r.ids[1] {
		t.Fatalf("S2: pod2 not learned")
	}
	// S3: after warm-up each frame leaves on exactly one port.
	before := r.sw.Ports()
	for range 10 {
		if out := r.send(0, ether(mac(2), mac(1), 0x0800, 50)); !eq(out, 1) {
			t.Fatalf("S3: 1->2 left on %v", out)
		}
		if out := r.send(1, ether(mac(1), mac(2), 0x0800, 50)); !eq(out, 0) {
			t.Fatalf("S3: 2->1 left on %v", out)
		}
	}
	after := r.sw.Ports()
	for i := range after {
		if after[i].Counters.Flooded != before[i].Counters.Flooded {
			t.Fatalf("S3: port %d flooded %d frames after warm-up", i, after[i].Counters.Flooded-before[i].Counters.Flooded)
		}
	}
	if got := after[0].Counters.RxFrames; got != 11 {
		t.Fatalf("port 0 rx %d, want 11", got)
	}
	if got := after[0].Counters.TxFrames; got != 11 {
		t.Fatalf("port 0 tx %d, want 11", got)
	}
	// S4: unknown unicast floods like broadcast.
	if out := r.send(0, ether(mac(9), mac(1), 0x0800, 50)); !eq(out, 1, 2, 3) {
		t.Fatalf("S4: unknown unicast left on %v", out)
	}
	if c := r.sw.Ports()[0].Counters; c.Unknown != 1 || c.Flooded != 2 {
		t.Fatalf("S4: counters %+v", c)
	}
	// S5: a frame to a MAC behind the ingress port is not sent back.
	if out := r.send(0, ether(mac(1), mac(3), 0x0800, 50)); len(out) != 0 {
		t.Fatalf("S5: frame to a MAC on its own port left on %v", out)
	}
	if c := r.sw.Ports()[0].Counters; c.Drops[vswitch.DropSamePort] != 1 {
		t.Fatalf("S5: same-port drop not counted: %v", c.DropMap)
	}
}

func TestMoveFollowsMAC(t *testing.T) { // S6
	r := newRig(t, 3, nil, nil)
	ev := r.sw.FDB().Subscribe(8)
	r.send(0, ether(bcast, mac(1), 0x0800, 50))
	r.send(1, ether(bcast, mac(1), 0x0800, 50))
	if out := r.send(2, ether(mac(1), mac(3), 0x0800, 50)); !eq(out, 1) {
		t.Fatalf("after the move, frame to pod1 left on %v, want [1]", out)
	}
	if s := r.sw.FDB().Stats(); s.Moved != 1 {
		t.Fatalf("moved %d, want 1", s.Moved)
	}
	want := []fdb.EventType{fdb.EventLearned, fdb.EventMoved, fdb.EventLearned}
	for i, w := range want {
		e := <-ev.C
		if e.Type != w {
			t.Fatalf("event %d is %v, want %v", i, e.Type, w)
		}
	}
}

func TestAgeingFloodsAgain(t *testing.T) { // S7
	r := newRig(t, 3, nil, nil)
	r.send(0, ether(bcast, mac(1), 0x0800, 50))
	r.send(1, ether(mac(1), mac(2), 0x0800, 50))
	// Frames *to* pod1 do not refresh it.
	for range 5 {
		r.clock.Advance(100 * time.Second)
		r.send(1, ether(mac(1), mac(2), 0x0800, 50))
	}
	if out := r.send(1, ether(mac(1), mac(2), 0x0800, 50)); !eq(out, 0, 2) {
		t.Fatalf("S7: frame to an expired MAC left on %v, want a flood [0 2]", out)
	}
	r.sw.Tick()
	if s := r.sw.FDB().Stats(); s.Aged != 1 || s.Entries != 1 {
		t.Fatalf("S7: after Tick: %+v", s)
	}
	// A frame from pod1 refreshes it and unicast resumes.
	r.send(0, ether(mac(2), mac(1), 0x0800, 50))
	r.clock.Advance(299 * time.Second)
	if out := r.send(1, ether(mac(1), mac(2), 0x0800, 50)); !eq(out, 0) {
		t.Fatalf("S7: refreshed entry: left on %v", out)
	}
}

func TestRemovePortFlushes(t *testing.T) { // S8
	r := newRig(t, 3, nil, nil)
	r.send(0, ether(bcast, mac(1), 0x0800, 50))
	r.send(1, ether(bcast, mac(2), 0x0800, 50))
	if err := r.sw.RemovePort(r.ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.sw.FDB().Lookup(1, mb(1), r.clock.Now()); ok {
		t.Fatal("S8: entry of the removed port survived")
	}
	if r.sw.FDB().Len() != 1 {
		t.Fatalf("S8: %d entries left, want 1", r.sw.FDB().Len())
	}
	if out := r.send(1, ether(bcast, mac(2), 0x0800, 50)); !eq(out, 2) {
		t.Fatalf("flood after removal left on %v, want [2]", out)
	}
	// A reader still holding the removed port's Ingress is dropped.
	r.in[0].Receive([][]byte{ether(bcast, mac(1), 0x0800, 50)})
	if _, ok := r.sw.FDB().Lookup(1, mb(1), r.clock.Now()); ok {
		t.Fatal("a frame from a removed port was learned")
	}
	if n1, n2 := r.ports[1].Len(), r.ports[2].Len(); n1 != 0 || n2 != 0 {
		t.Fatalf("a frame from a removed port was forwarded: %d and %d copies", n1, n2)
	}
}

func TestMalformedFramesDropped(t *testing.T) {
	r := newRig(t, 2, nil, nil)
	cases := []struct {
		name  string
		frame []byte
		why   vswitch.DropReason
	}{
		{"runt", make([]byte, 13), vswitch.DropRunt},
		{"oversize", ether(bcast, mac(1), 0x0800, 1501+4), vswitch.DropOversize},
		{"link-local STP", ether(fdb.MAC{0x01, 0x80, 0xc2, 0, 0, 0}, mac(1), 0x0026, 50), vswitch.DropLinkLocal},
		{"link-local LLDP", ether(fdb.MAC{0x01, 0x80, 0xc2, 0, 0, 0x0e}, mac(1), 0x88cc, 50), vswitch.DropLinkLocal},
		{"multicast source", ether(bcast, fdb.MAC{0x01, 0, 0x5e, 0, 0, 1}, 0x0800, 50), vswitch.DropBadSource},
		{"zero source", ether(bcast, fdb.MAC{}, 0x0800, 50), vswitch.DropBadSource},
		{"truncated tag", ether(bcast, mac(1), 0x8100, 2), vswitch.DropBadVLAN},
		{"truncated ARP", ether(bcast, mac(1), 0x0806, 20), vswitch.DropARPMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := r.sw.Ports()[0].Counters.Drops[c.why]
			if out := r.send(0, c.frame); len(out) != 0 {
				t.Fatalf("forwarded to %v", out)
			}
			if after := r.sw.Ports()[0].Counters.Drops[c.why]; after != before+1 {
				t.Fatalf("drop %v counted %d times", c.why, after-before)
			}
		})
	}
	// 01:80:C2:00:00:10 is not link-local: it floods.
	if out := r.send(0, ether(fdb.MAC{0x01, 0x80, 0xc2, 0, 0, 0x10}, mac(1), 0x0800, 50)); !eq(out, 1) {
		t.Fatalf("01:80:c2:00:00:10 left on %v", out)
	}
	// The largest legal frame passes.
	if out := r.send(0, ether(bcast, mac(1), 0x0800, 1500)); !eq(out, 1) {
		t.Fatalf("a 1514-byte frame left on %v", out)
	}
}

func tagged(f []byte, vid uint16) []byte {
	g := make([]byte, len(f)+4)
	copy(g, f[:12])
	binary.BigEndian.PutUint16(g[12:], 0x8100)
	binary.BigEndian.PutUint16(g[14:], vid)
	copy(g[16:], f[12:])
	return g
}

func TestVLANs(t *testing.T) {
	// Ports 0,1 access VLAN 10; port 2 access VLAN 20; port 3 trunk 10,20.
	r := newRig(t, 4, nil, func(i int, c *vswitch.PortConfig) {
		switch i {
		case 0, 1:
			c.PVID = 10
		case 2:
			c.PVID = 20
		case 3:
			c.Trunk, c.Allowed = true, []uint16{10, 20}
		}
	})
	f := ether(bcast, mac(1), 0x0800, 50)
	if out := r.send(0, f); !eq(out, 1, 3) {
		t.Fatalf("VLAN 10 broadcast left on %v, want [1 3]", out)
	}
	r.in[0].Receive([][]byte{f})
	if got := r.ports[3].Take(); len(got) != 1 || binary.BigEndian.Uint16(got[0][12:]) != 0x8100 ||
		binary.BigEndian.Uint16(got[0][14:])&0xfff != 10 || len(got[0]) != len(f)+4 {
		t.Fatalf("trunk copy not tagged with VLAN 10: % x", got)
	}
	if got := r.ports[1].Take(); len(got) != 1 || len(got[0]) != len(f) {
		t.Fatalf("access copy not untagged")
	}
	// Tagged VLAN 20 from the trunk reaches only port 2, untagged.
	g := tagged(ether(bcast, mac(5), 0x0800, 50), 20)
	r.in[3].Receive([][]byte{g})
	if r.ports[0].Len()+r.ports[1].Len() != 0 {
		t.Fatal("VLAN 20 leaked into VLAN 10")
	}
	if got := r.ports[2].Take(); len(got) != 1 || len(got[0]) != len(g)-4 || binary.BigEndian.Uint16(got[0][12:]) != 0x0800 {
		t.Fatalf("tag not popped for the access port: % x", got)
	}
	// Same MAC in two VLANs: separate entries.
	r.send(3, tagged(ether(bcast, mac(7), 0x0800, 50), 10))
	r.send(2, ether(bcast, mac(7), 0x0800, 50))
	if p, ok := r.sw.FDB().Lookup(10, mb(7), r.clock.Now()); !ok || p != r.ids[3] {
		t.Fatal("mac 7 not on the trunk in VLAN 10")
	}
	if p, ok := r.sw.FDB().Lookup(20, mb(7), r.clock.Now()); !ok || p != r.ids[2] {
		t.Fatal("mac 7 not on port 2 in VLAN 20")
	}
	// VLAN 30 on the trunk, or VLAN 20 on an access port of 10: dropped.
	if out := r.send(3, tagged(ether(bcast, mac(5), 0x0800, 50), 30)); len(out) != 0 {
		t.Fatalf("VLAN 30 forwarded to %v", out)
	}
	if out := r.send(0, tagged(ether(bcast, mac(1), 0x0800, 50), 20)); len(out) != 0 {
		t.Fatalf("VLAN 20 tag on an access port of VLAN 10 forwarded to %v", out)
	}
	// Untagged on a trunk without native VLAN: dropped.
	if out := r.send(3, ether(bcast, mac(5), 0x0800, 50)); len(out) != 0 {
		t.Fatalf("untagged frame on a trunk forwarded to %v", out)
	}
	if d := r.sw.Ports()[3].Counters.Drops[vswitch.DropBadVLAN]; d != 2 {
		t.Fatalf("trunk bad-vlan drops %d, want 2", d)
	}
}

func TestHairpin(t *testing.T) {
	r := newRig(t, 2, nil, func(i int, c *vswitch.PortConfig) { c.Hairpin = i == 0 })
	if out := r.send(0, ether(bcast, mac(1), 0x0800, 50)); !eq(out, 0, 1) {
		t.Fatalf("hairpin flood left on %v, want [0 1]", out)
	}
	r.send(0, ether(bcast, mac(3), 0x0800, 50))
	if out := r.send(0, ether(mac(3), mac(1), 0x0800, 50)); !eq(out, 0) {
		t.Fatalf("hairpin unicast left on %v, want [0]", out)
	}
	if out := r.send(1, ether(bcast, mac(2), 0x0800, 50)); !eq(out, 0) {
		t.Fatalf("non-hairpin flood left on %v", out)
	}
}

func TestARPSuppression(t *testing.T) {
	for _, on := range []bool{false, true} {
		r := newRig(t, 3, func(c *vswitch.Config) { c.ARP.Suppress = on }, nil)
		// pod2 announces itself (gratuitous ARP): it floods and is snooped.
		garp := arpFrame(t, bcast, 1, mac(2), ip4(2), fdb.MAC{}, ip4(2))
		if out := r.send(1, garp); !eq(out, 0, 2) {
			t.Fatalf("suppress=%v: gratuitous ARP left on %v", on, out)
		}
		req := arpFrame(t, bcast, 1, mac(1), ip4(1), fdb.MAC{}, ip4(2))
		out := r.send(0, req)
		if !on {
			if !eq(out, 1, 2) {
				t.Fatalf("suppression off: request left on %v", out)
			}
			continue
		}
		if !eq(out, 0) {
			t.Fatalf("suppression on: request for a known IP left on %v, want the answer on [0]", out)
		}
		r.in[0].Receive([][]byte{req})
		got := r.ports[0].Take()
		p, err := arp.Parse(got[0][14:])
		if err != nil || p.Op != 2 || p.SHA != mac(2) || p.SPA != ip4(2) || p.THA != mac(1) || p.TPA != ip4(1) {
			t.Fatalf("suppressed answer %+v %v", p, err)
		}
		if fdb.MACFrom(got[0][0:]) != mac(1) || fdb.MACFrom(got[0][6:]) != mac(2) {
			t.Fatalf("answer's Ethernet header % x", got[0][:14])
		}
		// An unknown IP still floods.
		if out := r.send(0, arpFrame(t, bcast, 1, mac(1), ip4(1), fdb.MAC{}, ip4(9))); !eq(out, 1, 2) {
			t.Fatalf("request for an unknown IP left on %v", out)
		}
		if s := r.sw.ARP().Stats(); s.Suppressed != 2 {
			t.Fatalf("suppressed %d, want 2", s.Suppressed)
		}
	}
}

func TestARPGuard(t *testing.T) {
	r := newRig(t, 3, func(c *vswitch.Config) { c.ARP.Guard = true }, func(i int, c *vswitch.PortConfig) {
		if i < 2 {
			c.IPs = []netip.Addr{ip4(byte(i + 1))}
		}
	})
	// pod1 (bound to .1) claims .2: dropped, counted, not snooped.
	spoof := arpFrame(t, bcast, 2, mac(1), ip4(2), bcast, ip4(2))
	if out := r.send(0, spoof); len(out) != 0 {
		t.Fatalf("spoofed ARP left on %v", out)
	}
	if _, ok := r.sw.ARP().Lookup(1, ip4(2), r.clock.Now()); ok {
		t.Fatal("spoofed binding was snooped")
	}
	if c := r.sw.Ports()[0].Counters; c.Drops[vswitch.DropARPGuard] != 1 {
		t.Fatalf("guard drop not counted: %v", c.DropMap)
	}
	// Its own address passes; so does an ARP probe (sender 0.0.0.0).
	if out := r.send(0, arpFrame(t, bcast, 1, mac(1), ip4(1), fdb.MAC{}, ip4(2))); !eq(out, 1, 2) {
		t.Fatalf("legitimate ARP left on %v", out)
	}
	if out := r.send(0, arpFrame(t, bcast, 1, mac(1), netip.IPv4Unspecified(), fdb.MAC{}, ip4(1))); !eq(out, 1, 2) {
		t.Fatalf("ARP probe left on %v", out)
	}
	// Sender MAC differing from the frame's source is refused too.
	bad := arpFrame(t, bcast, 1, mac(1), ip4(1), fdb.MAC{}, ip4(2))
	copy(bad[6:], []byte{2, 0, 0, 0, 0, 0x42})
	if out := r.send(0, bad); len(out) != 0 {
		t.Fatalf("ARP with a foreign sender MAC left on %v", out)
	}
	// The unbound port (an uplink) may speak for any address.
	if out := r.send(2, arpFrame(t, bcast, 2, mac(3), ip4(77), bcast, ip4(77))); !eq(out, 0, 1) {
		t.Fatalf("unbound port's ARP left on %v", out)
	}
}

func TestTableLimitPolicies(t *testing.T) {
	for _, pol := range []fdb.Policy{fdb.StopLearning, fdb.EvictFair} {
		t.Run(pol.String(), func(t *testing.T) {
			r := newRig(t, 3, func(c *vswitch.Config) { c.FDB.Limit = 64; c.FDB.Policy = pol }, nil)
			// Two legitimate pods talk first.
			r.send(1, ether(bcast, mac(1), 0x0800, 50))
			r.send(2, ether(mac(1), mac(2), 0x0800, 50))
			// Port 0 floods random sources.
			for i := range 1000 {
				src := fdb.MAC{0x02, 0xee, 0, 0, byte(i >> 8), byte(i)}
				r.send(0, ether(bcast, src, 0x0800, 50))
			}
			st := r.sw.FDB().Stats()
			if st.Entries > 64 {
				t.Fatalf("table grew to %d past its limit 64", st.Entries)
			}
			// The legitimate pods keep their entries either way: under
			// stop-learning because they came first, under evict-fair
			// because the flooder evicts only its own.
			if out := r.send(1, ether(mac(2), mac(1), 0x0800, 50)); !eq(out, 2) {
				t.Fatalf("unicast 1->2 during the flood left on %v", out)
			}
			switch pol {
			case fdb.StopLearning:
				if st.Refused == 0 || st.Evicted != 0 {
					t.Fatalf("stop-learning: %+v", st)
				}
				// A newcomer is refused and so gets flooded to.
				r.send(2, ether(bcast, mac(3), 0x0800, 50))
				if out := r.send(1, ether(mac(3), mac(1), 0x0800, 50)); !eq(out, 0, 2) {
					t.Fatalf("newcomer under stop-learning: left on %v, want a flood", out)
				}
			case fdb.EvictFair:
				if st.Evicted == 0 || st.Refused != 0 {
					t.Fatalf("evict-fair: %+v", st)
				}
				// A newcomer is learned, at the flooder's expense.
				r.send(2, ether(bcast, mac(3), 0x0800, 50))
				if out := r.send(1, ether(mac(3), mac(1), 0x0800, 50)); !eq(out, 2) {
					t.Fatalf("newcomer under evict-fair: left on %v", out)
				}
				if n := r.sw.FDB().PortEntries(r.ids[0]); n != 61 {
					t.Fatalf("flooder holds %d entries, want 61", n)
				}
			}
		})
	}
}

func TestStormControl(t *testing.T) {
	r := newRig(t, 3, nil, func(i int, c *vswitch.PortConfig) {
		if i == 0 {
			c.Storm = 100
		}
	})
	r.send(1, ether(bcast, mac(2), 0x0800, 50))
	r.send(2, ether(bcast, mac(3), 0x0800, 50))
	flooded := 0
	for range 500 {
		flooded += len(r.send(0, ether(bcast, mac(1), 0x0800, 50)))
		// Unicast from the storming port is not limited.
		if out := r.send(0, ether(mac(2), mac(1), 0x0800, 50)); !eq(out, 1) {
			t.Fatalf("unicast from the storming port left on %v", out)
		}
	}
	if flooded != 200 { // 100 frames x 2 ports
		t.Fatalf("storm control let %d copies through, want 200", flooded)
	}
	r.clock.Advance(time.Second)
	if out := r.send(0, ether(bcast, mac(1), 0x0800, 50)); !eq(out, 1, 2) {
		t.Fatalf("next second: broadcast left on %v", out)
	}
	if d := r.sw.Ports()[0].Counters.Drops[vswitch.DropStorm]; d != 400 {
		t.Fatalf("storm drops %d, want 400", d)
	}
}

func TestVnetHeaderPassThrough(t *testing.T) {
	r := newRig(t, 3, func(c *vswitch.Config) { c.HeaderLen = vswitch.VnetHdrLen }, func(i int, c *vswitch.PortConfig) {
		if i == 2 {
			c.Trunk, c.Allowed = true, []uint16{1}
		}
	})
	// A 64 KiB TCP super-frame with a checksum-offload header.
	eth := ether(bcast, mac(1), 0x0800, 65000)
	h := vswitch.VnetHdr{Flags: 1, GSOType: vswitch.GSOTCPv4, HdrLen: 66, GSOSize: 1448, CsumStart: 34, CsumOffset: 16}
	f := make([]byte, vswitch.VnetHdrLen+len(eth))
	h.Encode(f)
	copy(f[vswitch.VnetHdrLen:], eth)
	r.in[0].Receive([][]byte{f})
	got := r.ports[1].Take()
	if len(got) != 1 || string(got[0]) != string(f) {
		t.Fatal("super-frame not passed through byte for byte")
	}
	// Towards the trunk the tag goes in and the header's offsets follow it.
	tg := r.ports[2].Take()
	if len(tg) != 1 {
		t.Fatalf("trunk got %d frames", len(tg))
	}
	hh := vswitch.DecodeVnetHdr(tg[0])
	if hh.CsumStart != 38 || hh.HdrLen != 70 || hh.GSOSize != 1448 {
		t.Fatalf("retagged header %+v", hh)
	}
	// Bad headers are dropped before they reach anyone's kernel.
	bad := []vswitch.VnetHdr{
		{GSOType: 9, GSOSize: 1448, Flags: 1, CsumStart: 34, CsumOffset: 16},               // unknown gso_type
		{GSOType: vswitch.GSOTCPv4, Flags: 1, CsumStart: 34, CsumOffset: 16},               // no gso_size
		{Flags: 1, CsumStart: 65000, CsumOffset: 16},                                       // csum_start past the end
		{GSOType: vswitch.GSOTCPv4, GSOSize: 1448, Flags: 1, CsumStart: 34, HdrLen: 65535}, // hdr_len past the end
		{Flags: 0x40}, // unknown flag
	}
	for i, b := range bad {
		g := append([]byte(nil), f...)
		b.Encode(g)
		r.in[0].Receive([][]byte{g})
		if r.ports[1].Len() != 0 {
			t.Fatalf("bad header %d (%+v) forwarded", i, b)
		}
	}
	if d := r.sw.Ports()[0].Counters.Drops[vswitch.DropBadVnetHdr]; d != uint64(len(bad)) {
		t.Fatalf("bad-vnet-hdr drops %d, want %d", d, len(bad))
	}
	// Without GSO the MTU applies.
	g := append([]byte(nil), f...)
	vswitch.VnetHdr{}.Encode(g)
	r.in[0].Receive([][]byte{g})
	if d := r.sw.Ports()[0].Counters.Drops[vswitch.DropOversize]; d != 1 {
		t.Fatalf("non-GSO 65 KB frame: oversize drops %d", d)
	}
}

func TestAddPortErrorsNameInput(t *testing.T) {
	r := newRig(t, 1, nil, nil)
	cases := []struct {
		cfg  vswitch.PortConfig
		want string
	}{
		{vswitch.PortConfig{Name: "p0"}, `port "p0" already exists`},
		{vswitch.PortConfig{}, "a name is required"},
		{vswitch.PortConfig{Name: "x", PVID: 5000}, `port "x": pvid 5000`},
		{vswitch.PortConfig{Name: "x", Trunk: true, Allowed: []uint16{0}}, `allowed VLAN 0`},
		{vswitch.PortConfig{Name: "x", Allowed: []uint16{3}}, `need a trunk port`},
		{vswitch.PortConfig{Name: "x", MTU: 20}, `mtu 20`},
		{vswitch.PortConfig{Name: "x", IPs: []netip.Addr{{}}}, `ip invalid IP`},
		{vswitch.PortConfig{Name: "x", IPs: []netip.Addr{netip.MustParseAddr("::ffff:10.0.0.1")}}, `ip ::ffff:10.0.0.1`},
	}
	for _, c := range cases {
		_, err := r.sw.AddPort(memport.New(), c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("AddPort(%+v) = %v, want an error naming %q", c.cfg, err, c.want)
		}
	}
	if n := len(r.sw.Ports()); n != 1 {
		t.Fatalf("failed AddPorts left %d ports", n)
	}
}

func TestPortsChangeWhileFramesFlow(t *testing.T) {
	r := newRig(t, 2, nil, nil)
	stop := make(chan struct{})
	done := make(chan struct{})
	var batches atomic.Int64
	go func() {
		defer close(done)
		f := ether(bcast, mac(1), 0x0800, 50)
		g := ether(mac(2), mac(1), 0x0800, 50)
		for {
			select {
			case <-stop:
				return
			default:
			}
			r.in[0].Receive([][]byte{f, g, f})
			r.ports[1].Take()
			batches.Add(1)
		}
	}()
	// Churn ports (each one a flood target while it exists) until both the
	// churn and the traffic have had their share.
	for i := 0; i < 200 || batches.Load() < 1000; i++ {
		id, err := r.sw.AddPort(memport.New(), vswitch.PortConfig{Name: fmt.Sprintf("churn%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.sw.RemovePort(id); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	<-done
	c := r.sw.Ports()[0].Counters
	if c.RxFrames != uint64(3*batches.Load()) {
		t.Fatalf("port 0 counted %d frames of %d sent", c.RxFrames, 3*batches.Load())
	}
	if got := r.sw.Ports()[1].Counters.TxFrames; got != c.RxFrames {
		t.Fatalf("port 1 was sent %d frames, want all %d", got, c.RxFrames)
	}
}

func mb(i byte) []byte { m := mac(i); return m[:] }

// A forged ARP that the guard drops must not teach the switch anything: the
// victim's MAC stays on its own port.
func TestARPGuardDropDoesNotMoveFDB(t *testing.T) {
	r := newRig(t, 3, func(c *vswitch.Config) { c.ARP.Guard = true }, func(i int, c *vswitch.PortConfig) {
		if i < 2 {
			c.IPs = []netip.Addr{ip4(byte(i + 1))}
		}
	})
	gw := mac(9)
	r.send(2, ether(bcast, gw, 0x0800, 50)) // the gateway speaks first
	// pod1 forges an ARP with the gateway's MAC as Ethernet and sender MAC.
	forged := arpFrame(t, bcast, 2, gw, ip4(9), bcast, ip4(9))
	if out := r.send(0, forged); len(out) != 0 {
		t.Fatalf("forged ARP left on %v", out)
	}
	if p, ok := r.sw.FDB().Lookup(1, gw[:], r.clock.Now()); !ok || p != r.ids[2] {
		t.Fatalf("gateway MAC now on port %v (ok=%v), want %v", p, ok, r.ids[2])
	}
}

// A frame is counted on its ingress port before any frame leaves the
// switch, also when a frame leaves in the middle of a batch (an ARP reply
// from suppression, a retagged copy): whoever sees the answer sees the
// question counted.
func TestCountedBeforeDelivered(t *testing.T) {
	r := newRig(t, 3, func(c *vswitch.Config) { c.ARP.Suppress = true }, func(i int, c *vswitch.PortConfig) {
		if i == 2 {
			c.Trunk, c.Allowed = true, []uint16{1}
		}
	})
	r.send(1, arpFrame(t, bcast, 1, mac(2), ip4(2), fdb.MAC{}, ip4(2))) // pod2 announces itself
	var seen []uint64
	for _, p := range r.ports {
		p.OnWrite = func([]byte) {
			pi, _ := r.sw.Port(r.ids[0])
			seen = append(seen, pi.Counters.RxFrames)
		}
	}
	// A batch of two: a request the switch answers itself (the reply is
	// written at once), then a broadcast retagged for the trunk.
	req := arpFrame(t, bcast, 1, mac(1), ip4(1), fdb.MAC{}, ip4(2))
	r.in[0].Receive([][]byte{req, ether(bcast, mac(1), 0x0800, 50)})
	if len(seen) != 3 {
		t.Fatalf("%d frames written, want 3 (the ARP reply, the broadcast to pod2 and to the trunk)", len(seen))
	}
	if seen[0] < 1 || seen[1] < 2 || seen[2] < 2 {
		t.Fatalf("ingress rx counter when each frame left: %v, want at least [1 2 2]", seen)
	}
}

// A port that fails to take frames has them counted as tx-error drops, not
// as sent; the other ports of a flood are not affected.
func TestTxErrorCounted(t *testing.T) {
	r := newRig(t, 3, nil, nil)
	r.ports[1].Close()
	f := ether(bcast, mac(1), 0x0800, 50)
	r.in[0].Receive([][]byte{f, f})
	c1, c2 := r.sw.Ports()[1].Counters, r.sw.Ports()[2].Counters
	if c1.TxFrames != 0 || c1.TxBytes != 0 || c1.Drops[vswitch.DropTxError] != 2 {
		t.Fatalf("failing port: tx %d frames %d bytes, tx-error %d; want 0, 0, 2", c1.TxFrames, c1.TxBytes, c1.Drops[vswitch.DropTxError])
	}
	if c2.TxFrames != 2 || c2.TxBytes != uint64(2*len(f)) {
		t.Fatalf("healthy port: tx %d frames %d bytes", c2.TxFrames, c2.TxBytes)
	}
}
