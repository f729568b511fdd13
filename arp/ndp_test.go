package arp

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/fdb"
)

func ip6(i byte) netip.Addr { return netip.AddrFrom16([16]byte{0xfd, 0, 15: i}) }
func ll6(i byte) netip.Addr { return netip.AddrFrom16([16]byte{0xfe, 0x80, 15: i}) }

var allNodes = netip.MustParseAddr("ff02::1")

func ndp(t testing.TB, m NDP) []byte {
	t.Helper()
	b, err := BuildNDP(nil, m, NDPOptions{RouterLifetime: 1800})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// na is an unsolicited NA for target from mac (its TLLAO when withLL).
func na(t testing.TB, target netip.Addr, mac fdb.MAC, withLL bool) []byte {
	return ndp(t, NDP{Type: TypeNeighborAdvertisement, Src: target, Dst: allNodes, Target: target,
		Flags: FlagOverride, LLAddr: mac, HasLLAddr: withLL})
}

// ns is a solicitation from src for target, with mac as SLLAO when withLL.
func ns(t testing.TB, src, target netip.Addr, mac fdb.MAC, withLL bool) []byte {
	return ndp(t, NDP{Type: TypeNeighborSolicitation, Src: src, Dst: SolicitedNode(target), Target: target,
		LLAddr: mac, HasLLAddr: withLL})
}

// resum rewrites p's ICMPv6 checksum after a test changed the message; the
// ICMPv6 header is at off.
func resum(p []byte, off int) []byte {
	msg := p[off:]
	msg[2], msg[3] = 0, 0
	s := sum16(0, p[8:40]) + uint64(len(msg)) + protoICMPv6
	binary.BigEndian.PutUint16(msg[2:], ^fold(sum16(s, msg)))
	return p
}

// withExt puts extension headers (each next-header value in hdrs, 8 bytes
// long) between p's IPv6 header and its payload.
func withExt(p []byte, hdrs ...byte) []byte {
	out := append([]byte(nil), p[:40]...)
	first := p[6]
	if len(hdrs) > 0 {
		out[6] = hdrs[0]
	}
	for i := range hdrs {
		next := first
		if i+1 < len(hdrs) {
			next = hdrs[i+1]
		}
		out = append(out, next, 0, 1, 4, 0, 0, 0, 0) // PadN filling the header
	}
	out = append(out, p[40:]...)
	binary.BigEndian.PutUint16(out[4:], uint16(len(out)-40))
	return out
}

func TestParseNDP(t *testing.T) {
	m1 := mac(1)
	good := na(t, ip6(1), m1, true)
	mod := func(f func(p []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	echo := ndp(t, NDP{Type: TypeNeighborSolicitation, Src: ip6(1), Dst: ip6(2), Target: ip6(2)})
	echo[40] = 128 // echo request
	echo = resum(echo, 40)
	tcp := make([]byte, 60)
	tcp[0], tcp[6], tcp[7] = 0x60, 6, 64
	binary.BigEndian.PutUint16(tcp[4:], 20)
	frag := withExt(good, 44)
	cases := []struct {
		name      string
		pkt       []byte
		offloaded bool
		want      string // "" parses, "not" is not NDP, else part of the error
		check     func(m NDP) bool
	}{
		{"na with tllao", good, false, "", func(m NDP) bool {
			return m.Type == TypeNeighborAdvertisement && m.Target == ip6(1) && m.HasLLAddr && m.LLAddr == m1 && m.Flags == FlagOverride
		}},
		{"na without option", na(t, ip6(1), m1, false), false, "", func(m NDP) bool { return !m.HasLLAddr }},
		{"ns with sllao", ns(t, ip6(1), ip6(2), m1, true), false, "", func(m NDP) bool {
			return m.Src == ip6(1) && m.Target == ip6(2) && m.LLAddr == m1 && m.Dst == SolicitedNode(ip6(2))
		}},
		{"dad ns", ns(t, netip.IPv6Unspecified(), ip6(2), m1, false), false, "", func(m NDP) bool { return m.Src.IsUnspecified() }},
		{"rs", ndp(t, NDP{Type: TypeRouterSolicitation, Src: ll6(1), Dst: netip.MustParseAddr("ff02::2"), LLAddr: m1, HasLLAddr: true}), false, "", nil},
		{"ra", ndp(t, NDP{Type: TypeRouterAdvertisement, Src: ll6(1), Dst: allNodes, LLAddr: m1, HasLLAddr: true}), false, "", nil},
		{"redirect", ndp(t, NDP{Type: TypeRedirect, Src: ll6(1), Dst: ip6(3), Target: ll6(9), LLAddr: m1, HasLLAddr: true}), false, "", func(m NDP) bool {
			return m.Target == ll6(9) && m.LLAddr == m1
		}},
		{"behind destination options", withExt(good, 60), false, "", func(m NDP) bool { return m.Target == ip6(1) }},
		{"behind hop-by-hop and routing", withExt(good, 0, 43), false, "", nil},
		{"ethernet padding ignored", append(append([]byte(nil), good...), 0, 0, 0, 0), false, "", nil},

		{"icmpv6 echo", echo, false, "not", nil},
		{"tcp", tcp, false, "not", nil},
		{"fragment", frag, false, "not", nil},
		{"tcp behind destination options", withExt(tcp, 60), false, "not", nil},

		{"short ipv6 header", good[:30], false, "ipv6 header", nil},
		{"ip version 4", mod(func(p []byte) []byte { p[0] = 0x45; return p }), false, "version", nil},
		{"payload past the frame", good[:len(good)-4], false, "payload length", nil},
		{"hop limit 64", mod(func(p []byte) []byte { p[7] = 64; return p }), false, "hop limit", nil},
		{"code 1", mod(func(p []byte) []byte { p[41] = 1; return resum(p, 40) }), false, "code", nil},
		{"bad checksum", mod(func(p []byte) []byte { p[42] ^= 0xff; return p }), false, "checksum", nil},
		{"bad checksum, offloaded", mod(func(p []byte) []byte { p[42] ^= 0xff; return p }), true, "", nil},
		{"truncated na", mod(func(p []byte) []byte { binary.BigEndian.PutUint16(p[4:], 20); return resum(p[:60], 40) }), false, "at least 24", nil},
		{"option length 0", mod(func(p []byte) []byte { p[65] = 0; return resum(p, 40) }), false, "option length", nil},
		{"option past the end", mod(func(p []byte) []byte { p[65] = 2; return resum(p, 40) }), false, "option length", nil},
		{"16-byte ll option", func() []byte {
			p := append(append([]byte(nil), good...), make([]byte, 8)...)
			binary.BigEndian.PutUint16(p[4:], uint16(len(p)-40))
			p[65] = 2
			return resum(p, 40)
		}(), false, "link-layer address option of 16", nil},
		{"multicast target", na(t, allNodes, m1, true), false, "multicast target", nil},
		{"dad not to solicited-node", ndp(t, NDP{Type: TypeNeighborSolicitation, Src: netip.IPv6Unspecified(), Dst: allNodes, Target: ip6(2)}), false, "DAD", nil},
		{"dad with sllao", ns(t, netip.IPv6Unspecified(), ip6(2), m1, true), false, "DAD", nil},
		{"solicited na to multicast", ndp(t, NDP{Type: TypeNeighborAdvertisement, Src: ip6(1), Dst: allNodes, Target: ip6(1), Flags: FlagSolicited}), false, "solicited", nil},
		{"ra from a global source", ndp(t, NDP{Type: TypeRouterAdvertisement, Src: ip6(1), Dst: allNodes}), false, "not link-local", nil},
		{"cut after an extension header", withExt(good, 60)[:48], false, "payload length", nil},
		{"extension header truncated", func() []byte {
			p := withExt(good, 60)
			p[41] = 200
			return p
		}(), false, "truncated", nil},
		{"hop-by-hop not first", withExt(good, 60, 0), false, "hop-by-hop", nil},
		{"too many extension headers", withExt(good, 60, 60, 60, 60, 60, 60, 60, 60, 60), false, "more than 8", nil},
		{"eight extension headers", withExt(good, 60, 60, 60, 60, 60, 60, 60, 60), false, "", nil},
		{"jumbogram", mod(func(p []byte) []byte { p[4], p[5] = 0, 0; return p }), false, "jumbogram", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := ParseNDP(c.pkt, c.offloaded)
			switch {
			case c.want == "":
				if err != nil {
					t.Fatalf("error %v", err)
				}
				if c.check != nil && !c.check(m) {
					t.Fatalf("parsed %+v", m)
				}
				if !MaybeNDP(c.pkt) {
					t.Fatal("MaybeNDP false for a packet that parses as NDP")
				}
			case c.want == "not":
				if !IsNotNDP(err) {
					t.Fatalf("error %v, want not NDP", err)
				}
			default:
				if err == nil || IsNotNDP(err) || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("error %v, want one naming %q", err, c.want)
				}
			}
		})
	}
}

// The switch's pre-filter: a couple of compares that let through every
// packet ParseNDP could call NDP and keep ordinary traffic out of the
// handler.
func TestMaybeNDP(t *testing.T) {
	p := make([]byte, 60)
	p[0] = 0x60
	for nh, want := range map[byte]bool{6: false, 17: false, 44: false, 58: false, 0: true, 43: true, 60: true} {
		p[6] = nh
		p[40] = 128 // echo request, when nh is ICMPv6
		if got := MaybeNDP(p); got != want {
			t.Errorf("next header %d: MaybeNDP %v", nh, got)
		}
	}
	p[6] = 58
	for typ := 128; typ < 256; typ++ {
		p[40] = byte(typ)
		if got, want := MaybeNDP(p), typ >= 133 && typ <= 137; got != want {
			t.Errorf("icmpv6 type %d: MaybeNDP %v", typ, got)
		}
	}
	if MaybeNDP(p[:40]) {
		t.Error("MaybeNDP true for a bare IPv6 header")
	}
}

func TestNDPSnooping(t *testing.T) {
	m1, m2 := mac(1), mac(2)
	cases := []struct {
		name    string
		pkt     []byte
		from    fdb.MAC // the Ethernet source
		ip      netip.Addr
		wantMAC fdb.MAC // zero: nothing learned
	}{
		{"na, target option", na(t, ip6(1), m1, true), m2, ip6(1), m1},
		{"na, no option: the frame's source", na(t, ip6(1), m1, false), m2, ip6(1), m2},
		{"ns, source option", ns(t, ip6(1), ip6(2), m1, true), m2, ip6(1), m1},
		{"ns, no option: the frame's source", ns(t, ip6(1), ip6(2), m1, false), m2, ip6(1), m2},
		{"ns, link-local source", ns(t, ll6(1), ip6(2), m1, true), m1, ll6(1), m1},
		{"dad for a global address learns nothing", ns(t, netip.IPv6Unspecified(), ip6(1), m1, false), m1, ip6(1), fdb.MAC{}},
		{"dad for a link-local holds it for the port", ns(t, netip.IPv6Unspecified(), ll6(1), m1, false), m1, ll6(1), m1},
		{"multicast ll option learns nothing", na(t, ip6(1), fdb.MAC{0x33, 0x33, 0, 0, 0, 1}, true), m1, ip6(1), fdb.MAC{}},
		{"rs learns nothing", ndp(t, NDP{Type: TypeRouterSolicitation, Src: ip6(1), Dst: netip.MustParseAddr("ff02::2"), LLAddr: m1, HasLLAddr: true}), m1, ip6(1), fdb.MAC{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := New(Config{Ageing: 10 * time.Second})
			if v := h.HandleNDP(3, 7, c.from[:], c.pkt, false, 0); v != Forward {
				t.Fatalf("verdict %v", v)
			}
			n, ok := h.Lookup(7, c.ip, 0)
			if c.wantMAC.IsZero() {
				if ok || h.Stats().NDPSnooped != 0 {
					t.Fatalf("learned %+v", n)
				}
				return
			}
			if !ok || n.MAC != c.wantMAC || n.Port != 3 || n.VLAN != 7 {
				t.Fatalf("learned %+v %v, want %v on port 3 vlan 7", n, ok, c.wantMAC)
			}
			if _, ok := h.Lookup(8, c.ip, 0); ok {
				t.Fatal("found in another VLAN")
			}
			if h.Stats().NDPSnooped != 1 {
				t.Fatalf("stats %+v", h.Stats())
			}
			if _, ok := h.Lookup(7, c.ip, int64(10*time.Second)); ok {
				t.Fatal("expired neighbour returned")
			}
			if h.Age(int64(11*time.Second)) != 1 {
				t.Fatal("not aged")
			}
		})
	}
}

// The guard on a pod's port (bound) for NDP, next to the unbound port (the
// gateway) that may speak for any address.
func TestNDPGuard(t *testing.T) {
	m1, m2, m9 := mac(1), mac(2), mac(9)
	type step struct {
		name string
		port fdb.PortID
		from fdb.MAC
		pkt  []byte
		want Verdict
	}
	steps := []step{
		{"own address", 1, m1, na(t, ip6(1), m1, true), Forward},
		{"own address, no option", 1, m1, na(t, ip6(1), m1, false), Forward},
		{"own address by NS", 1, m1, ns(t, ip6(1), ip6(2), m1, true), Forward},
		{"another pod's address by NA", 1, m1, na(t, ip6(2), m1, true), Drop},
		{"another pod's address by NS", 1, m1, ns(t, ip6(2), ip6(9), m1, true), Drop},
		{"another pod's address by RS", 1, m1, ndp(t, NDP{Type: TypeRouterSolicitation, Src: ip6(2), Dst: netip.MustParseAddr("ff02::2")}), Drop},
		{"an unbound global address (the gateway's)", 1, m1, na(t, ip6(100), m1, true), Drop},
		{"own address, option not the frame's source", 1, m1, na(t, ip6(1), m2, true), Drop},
		{"DAD for another pod's address", 1, m1, ns(t, netip.IPv6Unspecified(), ip6(2), m1, false), Forward},
		{"own link-local", 1, m1, na(t, ll6(1), m1, true), Forward},
		{"the gateway learns its link-local", 9, m9, ns(t, ll6(9), ip6(1), m9, true), Forward},
		{"a link-local another port holds", 1, m1, na(t, ll6(9), m1, true), Drop},
		{"pod 2's link-local, held by pod 1", 2, m2, na(t, ll6(1), m2, true), Drop},
		{"a fresh link-local", 2, m2, na(t, ll6(2), m2, true), Forward},
		{"pod 2's DAD for a new link-local", 2, m2, ns(t, netip.IPv6Unspecified(), ll6(22), m2, false), Forward},
		{"pod 1 answers pod 2's DAD", 1, m1, na(t, ll6(22), m1, true), Drop},
		{"pod 1's DAD for the gateway's link-local", 1, m1, ns(t, netip.IPv6Unspecified(), ll6(9), m1, false), Forward},
		{"the gateway speaks for pod 1's address", 9, m9, na(t, ip6(1), m9, true), Forward},
		{"the gateway speaks for anything", 9, m9, na(t, ip6(77), m9, true), Forward},
		{"a v4-only pod's global v6", 3, mac(3), na(t, ip6(3), mac(3), true), Drop},
		{"a v4-only pod's link-local", 3, mac(3), na(t, ll6(3), mac(3), true), Forward},
	}
	h := New(Config{Guard: true, Ageing: time.Minute})
	if err := h.Bind(1, ip(1), ip6(1)); err != nil {
		t.Fatal(err)
	}
	if err := h.Bind(2, ip(2), ip6(2)); err != nil {
		t.Fatal(err)
	}
	if err := h.Bind(3, ip(3)); err != nil {
		t.Fatal(err)
	}
	drops := 0
	for _, s := range steps {
		if v := h.HandleNDP(s.port, 1, s.from[:], s.pkt, false, 0); v != s.want {
			t.Errorf("%s: verdict %v, want %v", s.name, v, s.want)
		}
		if s.want == Drop {
			drops++
		}
	}
	st := h.Stats()
	if st.NDPGuardDrops != uint64(drops) || st.GuardDrops != 0 {
		t.Errorf("stats %+v, want %d NDP guard drops", st, drops)
	}
	if n, ok := h.Lookup(1, ip6(2), 0); ok {
		t.Errorf("a dropped claim was learned: %+v", n)
	}
	if n, ok := h.Lookup(1, ll6(9), 0); !ok || n.Port != 9 {
		t.Errorf("the gateway's link-local moved: %+v %v", n, ok)
	}
	if n, ok := h.Lookup(1, ll6(22), 0); !ok || n.Port != 2 || n.MAC != m2 {
		t.Errorf("pod 2's DAD did not hold its link-local: %+v %v", n, ok)
	}
	// Once the holder's entry expired, the link-local is free to claim.
	if v := h.HandleNDP(1, 1, m1[:], na(t, ll6(9), m1, true), false, int64(time.Minute)); v != Forward {
		t.Errorf("expired link-local: %v", v)
	}
	// The guard off: everything passes and is learned.
	h.SetConfig(Config{Ageing: time.Minute})
	if v := h.HandleNDP(1, 1, m1[:], na(t, ip6(2), m1, true), false, 0); v != Forward {
		t.Errorf("guard off: %v", v)
	}
	if n, ok := h.Lookup(1, ip6(2), 0); !ok || n.Port != 1 {
		t.Errorf("guard off: not learned: %+v", n)
	}
	// A removed port's bindings and neighbours go with it.
	h.RemovePort(1)
	if _, ok := h.Lookup(1, ll6(1), 0); ok {
		t.Error("neighbour of a removed port kept")
	}
}

func TestRouterAdvertisementGuard(t *testing.T) {
	m1, m9 := mac(1), mac(9)
	ra := ndp(t, NDP{Type: TypeRouterAdvertisement, Src: ll6(1), Dst: allNodes, LLAddr: m1, HasLLAddr: true})
	redirect := ndp(t, NDP{Type: TypeRedirect, Src: ll6(1), Dst: ip6(2), Target: ll6(1), LLAddr: m1, HasLLAddr: true})
	gwRA := ndp(t, NDP{Type: TypeRouterAdvertisement, Src: ll6(9), Dst: allNodes, LLAddr: m9, HasLLAddr: true})
	for _, guard := range []bool{false, true} {
		h := New(Config{Guard: guard})
		if err := h.Bind(1, ip6(1)); err != nil {
			t.Fatal(err)
		}
		for _, p := range [][]byte{ra, redirect} {
			if v := h.HandleNDP(1, 1, m1[:], p, false, 0); v != DropRouter {
				t.Errorf("guard %v: a pod's type %d: %v", guard, p[40], v)
			}
		}
		if v := h.HandleNDP(9, 1, m9[:], gwRA, false, 0); v != Forward {
			t.Errorf("guard %v: the gateway's RA: %v", guard, v)
		}
		if st := h.Stats(); st.RAGuardDrops != 2 || st.NDPGuardDrops != 0 {
			t.Errorf("guard %v: stats %+v", guard, st)
		}
		h.SetConfig(Config{Guard: guard, PodRouterAdvertisements: true})
		for _, p := range [][]byte{ra, redirect} {
			if v := h.HandleNDP(1, 1, m1[:], p, false, 0); v != Forward {
				t.Errorf("guard %v, allowed: a pod's type %d: %v", guard, p[40], v)
			}
		}
	}
}

func TestNDPMalformedCounted(t *testing.T) {
	h := New(Config{Guard: true})
	m1 := mac(1)
	bad := na(t, ip6(1), m1, true)
	bad[42] ^= 1
	if v := h.HandleNDP(1, 1, m1[:], bad, false, 0); v != Malformed {
		t.Fatalf("bad checksum: %v", v)
	}
	if _, ok := h.Lookup(1, ip6(1), 0); ok {
		t.Fatal("learned from a frame with a bad checksum")
	}
	if v := h.HandleNDP(1, 1, m1[:], bad, true, 0); v != Forward {
		t.Fatalf("bad checksum, offloaded: %v", v)
	}
	echo := ndp(t, NDP{Type: TypeNeighborSolicitation, Src: ip6(1), Dst: ip6(2), Target: ip6(2)})
	echo[40] = 129
	if v := h.HandleNDP(1, 1, m1[:], echo, false, 0); v != Forward {
		t.Fatalf("echo reply: %v", v)
	}
	if st := h.Stats(); st.NDPMalformed != 1 || st.Malformed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestBindBothFamilies(t *testing.T) {
	h := New(Config{})
	if err := h.Bind(1, ip(1), ip6(1)); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"::ffff:10.244.0.1", "fe80::1%eth0", "ff02::1", "::", "::1", "0.0.0.0", "224.0.0.1", "127.0.0.1"} {
		a := netip.MustParseAddr(bad)
		if err := h.Bind(2, a); err == nil || !strings.Contains(err.Error(), a.String()) {
			t.Errorf("Bind(%v) = %v, want an error naming it", a, err)
		}
	}
	if err := h.Bind(2, netip.Addr{}); err == nil {
		t.Error("Bind of the zero Addr accepted")
	}
}

// Neighbours lists both families, by VLAN, IPv4 before IPv6.
func TestNeighboursBothFamilies(t *testing.T) {
	h := New(Config{})
	m := mac(1)
	h.HandleNDP(1, 2, m[:], na(t, ip6(1), m, true), false, 0)
	h.HandleNDP(1, 1, m[:], na(t, ll6(1), m, true), false, 0)
	h.HandleNDP(1, 1, m[:], na(t, ip6(5), m, true), false, 0)
	h.Handle(1, 1, m[:], body(t, 1, m, ip(9), ip(2)), 0, nil)
	h.Handle(1, 2, m[:], body(t, 1, m, ip(1), ip(2)), 0, nil)
	var got []string
	for _, n := range h.Neighbours() {
		got = append(got, n.IP.String()+"/"+string(rune('0'+n.VLAN)))
	}
	want := []string{"10.244.0.9/1", "fd00::5/1", "fe80::1/1", "10.244.0.1/2", "fd00::1/2"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("Neighbours %v, want %v", got, want)
	}
	if st := h.Stats(); st.Neighbours != 5 || st.NDPSnooped != 3 || st.Snooped != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestBuildNDPRejects(t *testing.T) {
	for _, m := range []NDP{
		{Type: 128, Src: ip6(1), Dst: ip6(2)},
		{Type: TypeNeighborAdvertisement, Src: ip(1), Dst: ip6(2)},
		{Type: TypeNeighborAdvertisement, Src: ip6(1), Dst: ip6(2), Target: ip(1)},
	} {
		if _, err := BuildNDP(nil, m, NDPOptions{}); err == nil {
			t.Errorf("BuildNDP(%+v) accepted", m)
		}
	}
}

// FuzzParseNDP: the parser never panics, the switch's pre-filter never
// hides NDP from it, and NDP it accepts with the checksum checked it
// accepts offloaded too.
func FuzzParseNDP(f *testing.F) {
	m := mac(1)
	f.Add(na(f, ip6(1), m, true), false)
	f.Add(ns(f, ip6(1), ip6(2), m, true), false)
	f.Add(ns(f, netip.IPv6Unspecified(), ip6(2), m, false), false)
	f.Add(withExt(na(f, ip6(1), m, true), 0, 60), true)
	f.Add(ndp(f, NDP{Type: TypeRouterAdvertisement, Src: ll6(1), Dst: allNodes, LLAddr: m, HasLLAddr: true}), false)
	f.Add(ndp(f, NDP{Type: TypeRedirect, Src: ll6(1), Dst: ip6(3), Target: ll6(9)}), true)
	f.Fuzz(func(t *testing.T, pkt []byte, offloaded bool) {
		msg, err := ParseNDP(pkt, offloaded)
		if err == nil && !MaybeNDP(pkt) {
			t.Fatalf("MaybeNDP false for NDP type %d", msg.Type)
		}
		if err == nil && !offloaded {
			if _, err := ParseNDP(pkt, true); err != nil {
				t.Fatalf("accepted with the checksum checked, refused offloaded: %v", err)
			}
		}
		h := New(Config{Guard: true, Ageing: time.Minute})
		_ = h.Bind(1, ip6(1))
		v := h.HandleNDP(1, 1, m[:], pkt, offloaded, 0)
		switch {
		case err == nil && v == Malformed, err != nil && !IsNotNDP(err) && v != Malformed, IsNotNDP(err) && v != Forward:
			t.Fatalf("verdict %v for parse error %v", v, err)
		}
		if v != Forward && h.Stats().Neighbours != 0 {
			t.Fatal("learned from a frame it dropped")
		}
	})
}
