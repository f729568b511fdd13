package vswitch

import (
	"sync/atomic"
	"time"
)

// stormMeter counts a port's broadcast, multicast and unknown-unicast frames
// in one-second windows (like the per-second storm control of hardware
// switches). It is shared by the port's reader goroutines, hence atomics;
// it is only touched for frames that would flood.
type stormMeter struct {
	limit  int64
	window atomic.Int64 // start of the current window
	count  atomic.Int64
}

func newStormMeter(pps int, now int64) *stormMeter {
	m := &stormMeter{limit: int64(pps)}
	m.window.Store(now)
	return m
}

// allow counts one frame and says whether it is within the limit.
func (m *stormMeter) allow(now int64) bool {
	w := m.window.Load()
	if now-w >= int64(time.Second) || now < w {
		if m.window.CompareAndSwap(w, now) {
			m.count.Store(0)
		}
	}
	return m.count.Add(1) <= m.limit
}
