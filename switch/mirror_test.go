package vswitch_test

import (
	"errors"
	"sync"
	"testing"

	vswitch "github.com/tapswitch/tapswitch/switch"
)

// recorder is a Mirror that keeps copies of what it hears.
type recorder struct {
	mu  sync.Mutex
	dir []vswitch.Direction
	got [][]byte
}

func (r *recorder) Mirror(dir vswitch.Direction, frames [][]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range frames {
		r.dir = append(r.dir, dir)
		r.got = append(r.got, append([]byte(nil), f...))
	}
}

func TestMirrorHearsBothDirections(t *testing.T) {
	r := newRig(t, 3, nil, nil)
	m := &recorder{}
	if err := r.sw.SetMirror(r.ids[1], m); err != nil {
		t.Fatal(err)
	}
	if err := r.sw.SetMirror(r.ids[1], &recorder{}); !errors.Is(err, vswitch.ErrMirrored) {
		t.Fatalf("second mirror on a port: %v, want ErrMirrored", err)
	}
	// p0 broadcasts (p1 receives a copy: Sent), p1 answers (Received), p0
	// sends a known unicast to p1 (Sent), p2 talks to p0 (not p1's).
	r.send(0, ether(bcast, mac(1), 0x0800, 46))
	r.send(1, ether(mac(1), mac(2), 0x0800, 46))
	r.send(0, ether(mac(2), mac(1), 0x0800, 46))
	r.send(2, ether(mac(1), mac(3), 0x0800, 46))
	want := []vswitch.Direction{vswitch.Sent, vswitch.Received, vswitch.Sent}
	if len(m.dir) != len(want) {
		t.Fatalf("mirror heard %d frames (%v), want %d", len(m.dir), m.dir, len(want))
	}
	for i := range want {
		if m.dir[i] != want[i] {
			t.Errorf("frame %d: direction %v, want %v", i, m.dir[i], want[i])
		}
	}
	if src := m.got[1][6:12]; string(src) != string(mb(2)) {
		t.Errorf("received frame has source %x, want p1's MAC", src)
	}
	r.sw.ClearMirror(r.ids[1], &recorder{}) // not p1's mirror: no effect
	r.send(0, ether(mac(2), mac(1), 0x0800, 46))
	if len(m.dir) != 4 {
		t.Fatalf("mirror cleared by a stranger: heard %d frames, want 4", len(m.dir))
	}
	r.sw.ClearMirror(r.ids[1], m)
	r.send(0, ether(mac(2), mac(1), 0x0800, 46))
	if len(m.dir) != 4 {
		t.Fatalf("mirror still hears after ClearMirror: %d frames", len(m.dir))
	}
	if err := r.sw.SetMirror(r.ids[1], m); err != nil {
		t.Fatalf("mirror after clear: %v", err)
	}
}

// countMirror is the cheapest Mirror: it counts batches.
type countMirror struct{ n int }

func (c *countMirror) Mirror(dir vswitch.Direction, frames [][]byte) { c.n += len(frames) }

// BenchmarkForwardPodFlowMirrored is BenchmarkForwardPodFlow with a mirror
// on both ports: the hook's cost when a capture is on (the capture itself
// then copies frames; this measures only the switch's side).
func BenchmarkForwardPodFlowMirrored(b *testing.B) {
	m := &countMirror{}
	n := benchPodFlow(b, m)
	// Each frame is heard twice: received on port 0, sent on port 1.
	if uint64(m.n) < 2*n {
		b.Fatalf("the mirror heard %d frames of %d sent, want both directions", m.n, n)
	}
}
