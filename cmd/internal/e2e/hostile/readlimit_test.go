package hostile

import (
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/cmd/internal/nodetest"
	"github.com/tapswitch/tapswitch/internal/testenv"
)

// TestMACFloodReadLimit: with a per-pod read limit (rx_pps), a pod flooding
// random source MACs gets no more of its frames read by the switch than the
// limit allows, however many it sends: the rest its own TAP drops, in its
// own context, so the flood costs the switch (and the pods it would have
// been flooded to) a bounded amount. The victims' entries survive and they
// still reach each other. Nothing here is timed: the bound is what the
// policer admits in the slots the flood spans, with the overshoot its
// batched, shared-slot accounting allows, and the flood outnumbers it many
// times over. It runs in both read modes (nodetest.ReadModes): the readers sleep out
// a spent slot, the poller pauses the queue.
func TestMACFloodReadLimit(t *testing.T) {
	nodetest.ReadModes(t, testMACFloodReadLimit)
}

func testMACFloodReadLimit(t *testing.T, e *nodetest.Env) {
	const rxPPS = 5000
	e.Cfg.FDB.Limit = 1024
	e.Cfg.FDB.Policy = "evict-fair"
	e.Cfg.RxPPS = rxPPS
	// Each reader may read one batch past a slot's budget (the bound
	// below): a small batch keeps the bound tight, and the flood needed to
	// exceed it tenfold within reach of a slow, race-checked flooder.
	e.Cfg.Batch = 8
	d := e.Start()
	a, b := e.AddQuietPod("a", 2), e.AddQuietPod("b", 3)
	e.AddQuietPod("evil", 4)
	e.MustPing(t, "a", 3, 2)

	rx0, drop0 := ports(d.Switch())["evil"].Counters.RxFrames, linkStats(t, e, "evil").TxDropped
	start := time.Now()
	fl := flood(writer(t, e, "evil", false), nil)
	time.Sleep(time.Second)
	sent := fl.Stop()
	offered := sent + fl.errs.Load()
	took := time.Since(start)
	// Frames already in evil's TAP queues when the flood stopped are read
	// afterwards, within the limit too: wait until the reads stop.
	var read uint64
	testenv.Eventually(2*time.Second, func() bool {
		n := ports(d.Switch())["evil"].Counters.RxFrames - rx0
		if n == read && n > 0 {
			return true
		}
		read = n
		time.Sleep(50 * time.Millisecond)
		return false
	})
	read = ports(d.Switch())["evil"].Counters.RxFrames - rx0
	dropped := linkStats(t, e, "evil").TxDropped - drop0
	drained := time.Since(start)

	// Per 10 ms slot the policer admits rx_pps/100 frames, plus one batch
	// per reader that was already read when the budget ran out, plus one
	// more per reader lost to a slot reset racing an add. +2 slots for the
	// partial ones at either end.
	slots := uint64(drained/(10*time.Millisecond)) + 2
	perSlot := uint64(rxPPS/100 + 2*e.Cfg.Queues*e.Cfg.Batch)
	bound := slots * perSlot
	t.Logf("flood offered %d frames in %v (%.0f kframes/s), %d into the TAP; switch read %d (%.0f/s over %v, bound %d); TAP dropped %d",
		offered, took.Round(time.Millisecond), float64(offered)/took.Seconds()/1e3, sent, read, float64(read)/drained.Seconds(), drained.Round(time.Millisecond), bound, dropped)
	if offered < 10*bound {
		t.Fatalf("only %d frames offered against a read bound of %d: not a flood", offered, bound)
	}
	if read > bound {
		t.Errorf("switch read %d flood frames, over the limit's %d (%d/s for %v)", read, bound, rxPPS, drained)
	}
	// What the switch did not read, the flooder's TAP dropped (or refused
	// at the write): the flood's excess never reached the switch.
	if dropped+(offered-sent) < offered-bound {
		t.Errorf("flood of %d frames, %d read: only %d dropped at the pod's TAP and %d refused", offered, read, dropped, offered-sent)
	}
	// The daemon reports those drops (tapswitch_port_device_drops_total):
	// the switch never saw them, so its own counters cannot.
	if got := d.DeviceDrops()["evil"]; got < drop0+dropped {
		t.Errorf("DeviceDrops()[evil] = %d, want at least the %d the TAP counted", got, drop0+dropped)
	}
	keepsEntries(t, d, a, b)
	e.MustPing(t, "a", 3, 5)
}
