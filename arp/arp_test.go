package arp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/fdb"
)

func ip(i byte) netip.Addr { return netip.AddrFrom4([4]byte{10, 244, 0, i}) }
func mac(i byte) fdb.MAC   { return fdb.MAC{2, 0, 0, 0, 0, i} }

func body(t testing.TB, op uint16, sha fdb.MAC, spa netip.Addr, tpa netip.Addr) []byte {
	b := make([]byte, BodyLen)
	if err := Build(b, op, sha, spa, fdb.MAC{}, tpa); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSnoopAndAge(t *testing.T) {
	h := New(Config{Ageing: 10 * time.Second})
	m := mac(1)
	if v, _ := h.Handle(1, 1, m[:], body(t, 1, m, ip(1), ip(2)), 0, nil); v != Forward {
		t.Fatalf("verdict %v", v)
	}
	n, ok := h.Lookup(1, ip(1), int64(9*time.Second))
	if !ok || n.MAC != m || n.Port != 1 {
		t.Fatalf("snooped %+v %v", n, ok)
	}
	if _, ok := h.Lookup(2, ip(1), 0); ok {
		t.Fatal("found in another VLAN")
	}
	if _, ok := h.Lookup(1, ip(1), int64(10*time.Second)); ok {
		t.Fatal("expired neighbour returned")
	}
	if h.Age(int64(11*time.Second)) != 1 || len(h.Neighbours()) != 0 {
		t.Fatal("not aged")
	}
}

func TestMalformedAndForeign(t *testing.T) {
	h := New(Config{Suppress: true, Guard: true})
	m := mac(1)
	if v, _ := h.Handle(1, 1, m[:], make([]byte, 20), 0, nil); v != Malformed {
		t.Fatalf("truncated: %v", v)
	}
	b := body(t, 1, m, ip(1), ip(2))
	b[7] = 9 // operation 9
	if v, _ := h.Handle(1, 1, m[:], b, 0, nil); v != Malformed {
		t.Fatalf("bad op: %v", v)
	}
	b = body(t, 1, m, ip(1), ip(2))
	b[1] = 6 // hardware type 6 (IEEE 802): not ours to judge
	if v, _ := h.Handle(1, 1, m[:], b, 0, nil); v != Forward {
		t.Fatalf("foreign htype: %v", v)
	}
	if s := h.Stats(); s.Malformed != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// TestBindIPv6: a dual-stack pod's IPv6 address is bound next to its IPv4
// one; a mapped or invalid address is not an address to bind.
func TestBindIPv6(t *testing.T) {
	if err := New(Config{}).Bind(1, ip(1), netip.MustParseAddr("fd00::a")); err != nil {
		t.Fatalf("IPv6 binding refused: %v", err)
	}
	for _, bad := range []netip.Addr{{}, netip.MustParseAddr("::ffff:10.0.0.1")} {
		if err := New(Config{}).Bind(1, bad); err == nil {
			t.Errorf("binding %v accepted", bad)
		}
	}
}

func FuzzHandle(f *testing.F) {
	m := mac(1)
	f.Add(body(f, 1, m, ip(1), ip(2)), uint16(1))
	f.Add(body(f, 2, m, ip(2), ip(1)), uint16(2))
	f.Add([]byte{0, 1, 8, 0, 6, 4, 0, 1}, uint16(1))
	f.Fuzz(func(t *testing.T, b []byte, port uint16) {
		h := New(Config{Suppress: true, Guard: true, Ageing: time.Minute})
		_ = h.Bind(1, ip(1))
		h.Handle(2, 1, m[:], body(t, 1, mac(2), ip(2), ip(2)), 0, nil)
		reply := make([]byte, BodyLen)
		v, from := h.Handle(fdb.PortID(port%4), 1, m[:], b, 1, reply)
		if v == Reply {
			p, err := Parse(reply)
			if err != nil || p.Op != 2 || p.SHA != from {
				t.Fatalf("reply %+v %v from %v", p, err, from)
			}
		}
		if _, err := Parse(b); err == nil && v == Malformed {
			t.Fatal("Parse accepts what Handle calls malformed")
		}
	})
}
