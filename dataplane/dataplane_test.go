package dataplane_test

import (
	"errors"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/dataplane"
	vswitch "github.com/tapswitch/tapswitch/switch"
	"github.com/tapswitch/tapswitch/tap"
)

// TestForward: two pods' TAPs joined by a switch through the dataplane, in
// each read mode. Datagrams go both ways (the ARP exchange before them
// floods, the rest is unicast), through every layer: a queue read by the
// dispatcher, the switch, the other port's WriteBatch into its TAP. The
// switch's counters show both ports carried frames; closing the ports
// reports nothing gone.
func TestForward(t *testing.T) {
	forModes(t, func(t *testing.T, disp dataplane.Dispatcher) {
		prefix := uniquePrefix(t)
		sw := newSwitch(t)
		var gone atomic.Int32
		onGone := func(error) { gone.Add(1) }
		devA, cfgA := newPod(t, prefix+"a", "10.251.0.2/24", 2, disp.Polled())
		devB, cfgB := newPod(t, prefix+"b", "10.251.0.3/24", 2, disp.Polled())
		a := start(t, sw, devA, disp, dataplane.Config{Port: vswitch.PortConfig{Name: "a"}, OnGone: onGone})
		b := start(t, sw, devB, disp, dataplane.Config{Port: vswitch.PortConfig{Name: "b"}, OnGone: onGone})
		if a.Polled() != disp.Polled() || a.Device() != devA || a.ID() == b.ID() {
			t.Fatalf("port a: polled %v (dispatcher %v), device %p (want %p), id %d (b's %d)", a.Polled(), disp.Polled(), a.Device(), devA, a.ID(), b.ID())
		}

		ca, cb := udpConn(t, cfgA), udpConn(t, cfgB)
		exchange(t, ca, cb, "ping")
		exchange(t, cb, ca, "pong")
		for i := range 50 {
			exchange(t, ca, cb, strings.Repeat("x", i+1))
		}
		for _, p := range []*dataplane.Port{a, b} {
			c := counters(t, sw, p.ID())
			if c.RxFrames == 0 || c.TxFrames == 0 {
				t.Errorf("port %d: rx %d, tx %d frames; want both", p.ID(), c.RxFrames, c.TxFrames)
			}
		}
		if ca := counters(t, sw, a.ID()); ca.RxFrames < 52 {
			t.Errorf("port a read %d frames, want at least the 52 datagrams it sent", ca.RxFrames)
		}

		for _, p := range []*dataplane.Port{a, b} {
			sw.RemovePort(p.ID())
			if err := p.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if err := p.Close(); err != nil {
				t.Errorf("Close again: %v", err)
			}
		}
		if _, err := devA.Queues()[1].WriteBatch([][]byte{make([]byte, 70)}); !errors.Is(err, os.ErrClosed) {
			t.Errorf("write to a closed port's queue: %v, want closed", err)
		}
		time.Sleep(50 * time.Millisecond)
		if n := gone.Load(); n != 0 {
			t.Errorf("OnGone called %d times for ports closed on purpose", n)
		}
	})
}

// TestRxPolicing: with RxPPS set, a pod flooding its TAP gets no more of
// its frames read by the switch than the limit allows, however many it
// sends; the rest its own TAP drops, and the kernel counts those drops
// (Device.Dropped). Nothing here is timed: the bound is what the policer
// admits in the slots the flood spans, with the overshoot its batched,
// shared-slot accounting allows, and the flood outnumbers it many times
// over. In both read modes: the readers sleep out a spent slot, the poller
// pauses the queue.
func TestRxPolicing(t *testing.T) {
	const rxPPS = 1000
	forModes(t, func(t *testing.T, disp dataplane.Dispatcher) {
		sw := newSwitch(t)
		dev, cfg := newPod(t, uniquePrefix(t), "10.251.0.2/24", 1, disp.Polled())
		// A short queue drains soon after the flood, within the limit:
		// the bound below grows with the time that takes.
		if err := dev.SetTxQueueLen(100); err != nil {
			t.Fatal(err)
		}
		p := start(t, sw, dev, disp, dataplane.Config{Port: vswitch.PortConfig{Name: "evil"}, RxPPS: rxPPS})
		w := packetSocket(t, cfg)
		f := frame(net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99}, dev.MAC())

		rx0 := counters(t, sw, p.ID()).RxFrames
		drop0, err := dev.Dropped()
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		var offered, refused uint64
		for time.Since(start) < 500*time.Millisecond {
			for range 256 {
				offered++
				if err := w.Write(f); errors.Is(err, unix.ENOBUFS) {
					refused++
				} else if err != nil {
					t.Fatal(err)
				}
			}
		}
		took := time.Since(start)
		// Frames already in the TAP's queue when the flood stopped are
		// read afterwards, within the limit too: wait until the reads stop.
		var read uint64
		eventually(5*time.Second, func() bool {
			n := counters(t, sw, p.ID()).RxFrames - rx0
			if n == read && n > 0 {
				return true
			}
			read = n
			time.Sleep(50 * time.Millisecond)
			return false
		})
		read = counters(t, sw, p.ID()).RxFrames - rx0
		drained := time.Since(start)
		drop1, err := dev.Dropped()
		if err != nil {
			t.Fatal(err)
		}
		dropped := drop1 - drop0

		// Per 10 ms slot the policer admits rx_pps/100 frames, plus one
		// batch per queue read when the budget ran out, plus one more per
		// queue lost to a slot reset racing a charge. +2 slots for the
		// partial ones at either end.
		slots := uint64(drained/(10*time.Millisecond)) + 2
		bound := slots * uint64(rxPPS/100+2*len(dev.Queues())*batch)
		t.Logf("flood offered %d frames in %v, %d refused; switch read %d (%.0f/s over %v, bound %d); TAP dropped %d",
			offered, took.Round(time.Millisecond), refused, read, float64(read)/drained.Seconds(), drained.Round(time.Millisecond), bound, dropped)
		if offered < 10*bound {
			t.Fatalf("only %d frames offered against a read bound of %d: not a flood", offered, bound)
		}
		if read == 0 || read > bound {
			t.Errorf("switch read %d flood frames, want some and at most the limit's %d (%d/s for %v)", read, bound, rxPPS, drained)
		}
		// What the switch did not read, the flooder's TAP dropped and
		// counted: the flood's excess never reached the switch.
		if dropped < offered-bound {
			t.Errorf("flood of %d frames, %d read: the TAP counted only %d dropped", offered, read, dropped)
		}
	})
}

// TestGone: deleting a port's TAP under its readers calls OnGone once for
// the port, not once per queue, with an error tap.IsGone recognises; the
// port then closes cleanly and reports nothing more.
func TestGone(t *testing.T) {
	forModes(t, func(t *testing.T, disp dataplane.Dispatcher) {
		sw := newSwitch(t)
		dev, cfg := newPod(t, uniquePrefix(t), "10.251.0.2/24", 3, disp.Polled())
		errc := make(chan error, 8)
		p := start(t, sw, dev, disp, dataplane.Config{Port: vswitch.PortConfig{Name: "a"}, OnGone: func(err error) { errc <- err }})
		time.Sleep(50 * time.Millisecond) // the readers are reading
		if err := tap.DeletePod(cfg, false); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-errc:
			if !tap.IsGone(err) {
				t.Errorf("OnGone got %v, want a gone device", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("OnGone not called 5s after the TAP was deleted")
		}
		time.Sleep(200 * time.Millisecond) // every queue has failed by now
		sw.RemovePort(p.ID())
		p.Close()
		select {
		case err := <-errc:
			t.Fatalf("OnGone called again: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	})
}

// TestStartFails: a port the switch refuses, or whose queues the
// dispatcher cannot read, is not left on the switch.
func TestStartFails(t *testing.T) {
	needRoot(t)
	sw := newSwitch(t)
	dev, _ := newPod(t, uniquePrefix(t), "10.251.0.2/24", 2, false)
	if _, err := dataplane.Start(sw, dev, dataplane.Readers{Batch: batch}, dataplane.Config{Port: vswitch.PortConfig{Name: "bad", MTU: 10}}); err == nil || !strings.Contains(err.Error(), "mtu 10") {
		t.Errorf("Start with MTU 10: %v, want the switch's refusal naming it", err)
	}
	if _, err := dataplane.Start(sw, dev, dataplane.Readers{}, dataplane.Config{Port: vswitch.PortConfig{Name: "nobatch"}}); err == nil || !strings.Contains(err.Error(), "batch 0") {
		t.Errorf("Start with readers of batch 0: %v, want a refusal naming it", err)
	}
	poller := modes[1].make(t)
	if _, err := dataplane.Start(sw, dev, poller, dataplane.Config{Port: vswitch.PortConfig{Name: "unpolled"}}); err == nil || !strings.Contains(err.Error(), "not opened for a poller") {
		t.Errorf("Start of netpoller queues on the poller: %v, want a refusal", err)
	}
	if n := len(sw.Ports()); n != 0 {
		t.Errorf("%d ports left on the switch after failed starts: %+v", n, sw.Ports())
	}
	// The device is still the caller's, and usable.
	p := start(t, sw, dev, dataplane.Readers{Batch: batch}, dataplane.Config{Port: vswitch.PortConfig{Name: "good"}})
	if n, err := p.WriteBatch([][]byte{append(make([]byte, vswitch.VnetHdrLen), frame(net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99}, dev.MAC())...)}); n != 1 || err != nil {
		t.Errorf("WriteBatch after the failed starts: %d, %v", n, err)
	}
}
