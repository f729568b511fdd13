package dataplane_test

import (
	"errors"
	"net"
	"testing"

	"github.com/tapswitch/tapswitch/dataplane"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

// held is a Dispatcher that reads nothing: it keeps the Rx of each queue
// for the test to drive by hand, as a read mode would.
type held struct{ rxs []*dataplane.Rx }

var _ dataplane.Dispatcher = (*held)(nil)

func (*held) Polled() bool { return false }

func (h *held) Serve(rxs []*dataplane.Rx) error {
	h.rxs = append(h.rxs, rxs...)
	return nil
}

func (*held) Stop(rxs []*dataplane.Rx) error {
	var errs []error
	for _, rx := range rxs {
		errs = append(errs, rx.Queue().Close())
	}
	return errors.Join(errs...)
}

// pair is two pods' ports on one switch, a (policed) and b, whose queues
// the test reads for itself; b's MAC is learned, so a's frames to it are
// known unicast.
func pair(tb testing.TB) (sw *vswitch.Switch, rxA *dataplane.Rx, toB [][]byte) {
	needRoot(tb)
	prefix := uniquePrefix(tb)
	sw = newSwitch(tb)
	h := &held{}
	devA, _ := newPod(tb, prefix+"a", "10.251.0.2/24", 1, false)
	devB, _ := newPod(tb, prefix+"b", "10.251.0.3/24", 1, false)
	start(tb, sw, devA, h, dataplane.Config{Port: vswitch.PortConfig{Name: "a"}, RxPPS: 1 << 30})
	start(tb, sw, devB, h, dataplane.Config{Port: vswitch.PortConfig{Name: "b"}})
	hdr := make([]byte, vswitch.VnetHdrLen)
	other := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99}
	h.rxs[1].Receive([][]byte{append(hdr, frame(other, devB.MAC())...)})
	f := append(hdr, frame(devB.MAC(), devA.MAC())...)
	return sw, h.rxs[0], [][]byte{f, f, f, f}
}

// TestReceiveDoesNotAllocate: the per-frame path of the dataplane (Rx
// charging the read limit, the switch, the egress port's WriteBatch into
// its TAP) allocates nothing.
func TestReceiveDoesNotAllocate(t *testing.T) {
	sw, rx, frames := pair(t)
	id, _ := sw.PortByName("b")
	tx0 := counters(t, sw, id).TxFrames
	if n := testing.AllocsPerRun(200, func() {
		if d := rx.Receive(frames); d != 0 {
			t.Fatalf("Receive under a limit of 2^30 frames/s asked for a pause of %v", d)
		}
	}); n != 0 {
		t.Fatalf("Receive of a batch of %d known-unicast frames: %v allocations, want 0", len(frames), n)
	}
	// AllocsPerRun runs the function once more than it counts.
	if got, want := counters(t, sw, id).TxFrames-tx0, uint64(201*len(frames)); got != want {
		t.Fatalf("b sent %d frames into its TAP, want %d: the frames did not take the known-unicast path", got, want)
	}
}

// BenchmarkReceive is the dataplane's share of a frame's way: a batch of 4
// known-unicast frames through Rx.Receive (policed), the switch and a real
// TAP's write. The read is left out: it is the kernel's.
func BenchmarkReceive(b *testing.B) {
	_, rx, frames := pair(b)
	b.ReportAllocs()
	for b.Loop() {
		rx.Receive(frames)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(frames)), "ns/frame")
}
