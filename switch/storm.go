package vswitch

import (
	"sync/atomic"
	"time"
)

// RateWindow caps how many events pass per fixed window of time: the
// windows are aligned to multiples of their span on the switch's clock,
// and each starts with the full budget. It is shared by every goroutine
// that charges it (a port's readers), hence atomics; a window's reset can
// race a concurrent charge and lose it, which lets a few more events
// through in that window, never fewer.
//
// Storm control (below) and the node dataplane's read limit per pod (the
// rx_pps policer) are both this counter, with a window of a second and of
// a few milliseconds. It lives in the switch, not in a package of its own,
// because storm control is part of the switch and every other user of it
// already imports the switch: one exported type here costs no new
// dependency, where a package would be a room holding one small type.
type RateWindow struct {
	span  int64 // the window's length, nanoseconds
	limit int64 // events per window
	start atomic.Int64
	count atomic.Int64
}

// NewRateWindow lets perSecond events per second through, counted in
// windows of span: each window's budget is perSecond's share of it, at
// least one event.
func NewRateWindow(perSecond int, span time.Duration) *RateWindow {
	s := max(int64(span), 1)
	return &RateWindow{span: s, limit: max(int64(perSecond)*s/int64(time.Second), 1)}
}

// Charge counts n events at now (the switch's clock, nanoseconds). It
// returns 0 while the window's budget lasts, and once it is spent the time
// left until the next window, which is always positive.
func (w *RateWindow) Charge(n int, now int64) time.Duration {
	cur := now - now%w.span
	if s := w.start.Load(); s != cur && w.start.CompareAndSwap(s, cur) {
		w.count.Store(0)
	}
	if w.count.Add(int64(n)) <= w.limit {
		return 0
	}
	return time.Duration(cur + w.span - now)
}

// newStormMeter is a port's storm control: its broadcast, multicast and
// unknown-unicast frames in one-second windows (like the per-second storm
// control of hardware switches). It is only charged for frames that would
// flood.
func newStormMeter(pps int) *RateWindow { return NewRateWindow(pps, time.Second) }
