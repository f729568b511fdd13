package vswitch_test

import (
	"encoding/binary"
	"testing"

	vswitch "github.com/tapswitch/tapswitch/switch"
)

// TestBatchEgressMemo drives one batch through every turn of the unicast
// fast path: frames for the port the previous one went to join its queue,
// but only with the same VLAN and tagging; retagged copies, same-port drops
// and a MAC moving in mid-batch break the run, and order is kept per port.
func TestBatchEgressMemo(t *testing.T) {
	// Ports 0 and 1: access VLAN 10. Port 2: trunk 10,20. Port 3: access 20.
	r := newRig(t, 4, nil, func(i int, c *vswitch.PortConfig) {
		switch i {
		case 0, 1:
			c.PVID = 10
		case 2:
			c.Trunk, c.Allowed = true, []uint16{10, 20}
		case 3:
			c.PVID = 20
		}
	})
	r.send(1, ether(bcast, mac(1), 0x0800, 50))
	r.send(2, tagged(ether(bcast, mac(2), 0x0800, 50), 10))
	r.send(0, ether(bcast, mac(3), 0x0800, 50))
	r.send(3, ether(bcast, mac(4), 0x0800, 50))

	to := func(dst byte, n byte) []byte {
		f := ether(mac(dst), mac(9), 0x0800, 50)
		f[20] = n // sequence number in the payload
		return f
	}
	moved := ether(mac(2), mac(1), 0x0800, 50) // mac 1 moves to port 0
	batch := [][]byte{
		to(1, 1), to(1, 2), // queued together for port 1
		to(2, 3),           // port 2 wants it tagged: written at once
		to(1, 4), to(2, 5), // alternate
		to(3, 6), // mac 3 is behind port 0: same-port drop
		to(1, 7), to(1, 8),
		moved,     // mac 1 now lives on port 0
		to(1, 9),  // so this is a same-port drop, not port 1's
		to(4, 10), // VLAN 20 only: unknown in VLAN 10, floods
	}
	r.in[0].Receive(batch)

	seq := func(fs [][]byte, off int) (out []int) {
		for _, f := range fs {
			out = append(out, int(f[20+off]))
		}
		return out
	}
	p1 := r.ports[1].Take()
	if got := seq(p1, 0); !eq(got, 1, 2, 4, 7, 8, 10) {
		t.Fatalf("port 1 got %v", got)
	}
	p2 := r.ports[2].Take()
	for _, f := range p2 {
		if binary.BigEndian.Uint16(f[12:]) != 0x8100 || binary.BigEndian.Uint16(f[14:])&0xfff != 10 {
			t.Fatalf("port 2 got an untagged or mis-tagged frame: % x", f[:18])
		}
	}
	if got := seq(p2, 4); len(got) != 4 || got[0] != 3 || got[1] != 5 || got[3] != 10 {
		t.Fatalf("port 2 got %v, want [3 5 <moved> 10]", got)
	}
	if n := r.ports[3].Len(); n != 0 {
		t.Fatalf("VLAN 20 port got %d frames", n)
	}
	c := r.sw.Ports()[0].Counters
	if c.Drops[vswitch.DropSamePort] != 2 || c.Dropped() != 2 {
		t.Fatalf("drops %v, want 2 same-port", c.DropMap)
	}
	if c.RxFrames != uint64(len(batch))+1 || c.Unknown != 1 {
		t.Fatalf("rx %d unknown %d", c.RxFrames, c.Unknown)
	}
}
