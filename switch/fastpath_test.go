package vswitch_test

import (
	"encoding/binary"
	"testing"

	"github.com/tapswitch/tapswitch/fdb"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

// TestBatchEgressMemo drives one batch through every turn of the unicast
// fast path: frames for the port the previous one went to join its queue,
// but only with the same VLAN and tagging; retagged copies, same-port drops
// and a MAC moving in mid-batch break the run, and order is kept per port.
func TestBatchEgressMemo(t *testing.T) {
	t.Run("trunk", testBatchEgressMemoTrunk)
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

// testBatchEgressMemoTrunk: frames from a trunk to one MAC behind another
// trunk, whose native VLAN is 20, change VLAN and tagging within a batch.
// Each must leave as the egress port's tagging rules say (VLAN 10 tagged,
// VLAN 20 untagged), so the memo that lets a frame join the previous one's
// queue must tell VLANs and arrival tagging apart.
func testBatchEgressMemoTrunk(t *testing.T) {
	// Port 0: trunk 10,20, native 10. Port 1: trunk 10,20, native 20.
	r := newRig(t, 2, nil, func(i int, c *vswitch.PortConfig) {
		c.Trunk, c.Allowed, c.PVID = true, []uint16{10, 20}, uint16(10+10*i)
	})
	// mac 5 lives behind port 1 in both VLANs; mac 9 behind port 0.
	r.send(1, tagged(ether(bcast, mac(5), 0x0800, 50), 10))
	r.send(1, ether(bcast, mac(5), 0x0800, 50))
	r.send(0, ether(bcast, mac(9), 0x0800, 50))
	r.send(0, tagged(ether(bcast, mac(9), 0x0800, 50), 20))

	to := func(n byte, vid uint16) []byte {
		f := ether(mac(5), mac(9), 0x0800, 50)
		f[20] = n // sequence number in the payload
		if vid != 0 {
			f = tagged(f, vid)
		}
		return f
	}
	batch := [][]byte{
		to(1, 10), to(2, 10), // queued together, tagged
		to(3, 20), // native on port 1: leaves untagged
		to(4, 10), // tagged again
		to(5, 0),  // untagged in, VLAN 10: port 1 wants it tagged
		to(6, 20), to(7, 20),
	}
	r.in[0].Receive(batch)

	type out struct {
		seq byte
		vid uint16 // 0: untagged
	}
	var got []out
	for _, f := range r.ports[1].Take() {
		if binary.BigEndian.Uint16(f[12:]) == 0x8100 {
			got = append(got, out{f[24], binary.BigEndian.Uint16(f[14:]) & 0xfff})
		} else {
			got = append(got, out{f[20], 0})
		}
	}
	want := []out{{1, 10}, {2, 10}, {3, 0}, {4, 10}, {5, 10}, {6, 0}, {7, 0}}
	if len(got) != len(want) {
		t.Fatalf("port 1 got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("port 1 got %v, want %v (sequence, VLAN tag)", got, want)
		}
	}
	if n := r.ports[0].Len(); n != 0 {
		t.Fatalf("port 0 got %d frames back", n)
	}
}

// hookTracer records decisions and runs hook (if set) as it hears each.
type hookTracer struct {
	learn []fdb.Result
	out   []fdb.PortID
	hook  func()
}

func (h *hookTracer) Frame(_ fdb.PortID, _ []byte, d vswitch.Decision) {
	h.learn = append(h.learn, d.Learn)
	h.out = append(h.out, d.Out)
	if h.hook != nil {
		h.hook()
	}
}

// TestLocalSourceFastPath: a batch from a port whose source MAC is a local
// entry (the daemon's gateway) takes the per-batch memo like a learned
// source does: the FDB is asked about the source once per batch, for a
// unicast (LearnLookup) and for a broadcast (LearnKey) alike. The proof:
// once the first frame's decision is out, the tracer deletes the local
// entry. A frame that asked the table again would learn the MAC anew
// (inserted); from the memo, every frame is ignored and nothing is learned.
func TestLocalSourceFastPath(t *testing.T) {
	for _, c := range []struct {
		name string
		dst  fdb.MAC
		kind fdb.Kind
	}{
		{"unicast/local", mac(2), fdb.Local},
		{"unicast/static", mac(2), fdb.Static},
		{"broadcast/local", bcast, fdb.Local},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := &hookTracer{}
			r := newRig(t, 3, func(cfg *vswitch.Config) { cfg.Tracer = tr }, nil)
			r.send(1, ether(bcast, mac(2), 0x0800, 50)) // mac 2 behind port 1
			gw := mac(7)
			if err := r.sw.FDB().AddStatic(vswitch.DefaultVLAN, gw, r.ids[0], c.kind); err != nil {
				t.Fatal(err)
			}
			*tr = hookTracer{hook: func() {
				if len(tr.learn) == 1 && !r.sw.FDB().Delete(vswitch.DefaultVLAN, gw, r.clock.Now()) {
					t.Error("no local entry to delete")
				}
			}}
			batch := make([][]byte, 4)
			for i := range batch {
				batch[i] = ether(c.dst, gw, 0x0800, 50)
			}
			r.in[0].Receive(batch)
			if len(tr.learn) != len(batch) {
				t.Fatalf("tracer heard %d frames", len(tr.learn))
			}
			for i, l := range tr.learn {
				if l != fdb.Ignored {
					t.Errorf("frame %d: learn %v, want ignored (from the memo)", i, l)
				}
				if c.dst != bcast && tr.out[i] != r.ids[1] {
					t.Errorf("frame %d: out %d, want %d", i, tr.out[i], r.ids[1])
				}
			}
			if p, ok := r.sw.FDB().Lookup(vswitch.DefaultVLAN, gw[:], r.clock.Now()); ok {
				t.Errorf("the local MAC was learned on port %d", p)
			}
			if n := r.ports[1].Len(); n != len(batch) {
				t.Errorf("port 1 got %d of %d frames", n, len(batch))
			}
		})
	}
}
