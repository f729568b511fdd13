package vswitch

import (
	"encoding/binary"
	"testing"

	"github.com/tapswitch/tapswitch/fdb"
	"github.com/tapswitch/tapswitch/switch/memport"
)

// TestSendLeavesLastAtItsQueue is why forward's egress memo needs no more
// guard than in.q.last != nil after send: whatever was queued before, send
// either queues the frame, leaving last at op's queue, or (op wants it
// retagged) flushes and writes a copy, leaving last nil. So last is not nil
// exactly when the frame was queued, and then it is op's queue, untagged(vid)
// != tagged: the longer guard forward had before.
func TestSendLeavesLastAtItsQueue(t *testing.T) {
	sw, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	// An access port (VLAN 10), trunks native in 10, 20 and none.
	cfgs := []PortConfig{
		{Name: "a", PVID: 10},
		{Name: "t10", Trunk: true, PVID: 10, Allowed: []uint16{10, 20}},
		{Name: "t20", Trunk: true, PVID: 20, Allowed: []uint16{10, 20}},
		{Name: "t0", Trunk: true, Allowed: []uint16{10, 20}},
	}
	var ids []fdb.PortID
	for _, c := range cfgs {
		id, err := sw.AddPort(memport.New(), c)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	set := sw.ports.Load()
	in, err := sw.Ingress(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	in.q.grow(len(set.byID))
	frame := func(vid uint16, tagged bool) []byte {
		f := make([]byte, 64)
		f[0], f[6] = 0x02, 0x02
		if tagged {
			binary.BigEndian.PutUint16(f[12:], etherTypeVLAN)
			binary.BigEndian.PutUint16(f[14:], vid)
			binary.BigEndian.PutUint16(f[16:], 0x0800)
		} else {
			binary.BigEndian.PutUint16(f[12:], 0x0800)
		}
		return f
	}
	n := 0
	// Every frame after every other, in every order: the state send starts
	// from is whatever the previous sends left (nothing queued, op's queue
	// last, another port's queue last).
	for _, before := range ids {
		for _, op := range ids {
			for _, vid := range []uint16{10, 20} {
				for _, tagged := range []bool{false, true} {
					for _, prevTagged := range []bool{false, true} {
						in.self = set.get(ids[0])
						if p := set.get(before); p.untagged(vid) != prevTagged {
							in.send(p, frame(vid, prevTagged), prevTagged, vid)
						}
						p := set.get(op)
						in.send(p, frame(vid, tagged), tagged, vid)
						queued := p.untagged(vid) != tagged
						if (in.q.last != nil) != queued {
							t.Fatalf("port %s vid %d tagged %v: last %v, queued %v", p.cfg.Name, vid, tagged, in.q.last, queued)
						}
						if in.q.last != nil && in.q.last.p != p {
							t.Fatalf("port %s vid %d tagged %v: last is port %s's queue", p.cfg.Name, vid, tagged, in.q.last.p.cfg.Name)
						}
						n++
						if n%3 == 0 {
							in.flush() // sometimes start from nothing queued
						}
					}
				}
			}
		}
	}
	in.flush()
	in.self = nil
}
