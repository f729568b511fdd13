package vswitch

import (
	"sync"
	"sync/atomic"
	"time"
)

var (
	_ Clock = (*CoarseClock)(nil)
	_ Clock = (*ManualClock)(nil)
)

// CoarseClock is a clock read with one atomic load and moved on by a ticker.
// Reading the system clock on every batch costs far more than the load, and
// the FDB only needs last-seen times to the millisecond.
type CoarseClock struct {
	now   atomic.Int64
	start time.Time
	base  int64
	stop  chan struct{}
	once  sync.Once
}

// NewCoarseClock starts a clock that advances every resolution. Its
// readings are Unix nanoseconds, kept monotonic (a wall-clock step does not
// age the whole table at once).
func NewCoarseClock(resolution time.Duration) *CoarseClock {
	c := &CoarseClock{start: time.Now(), stop: make(chan struct{})}
	c.base = c.start.UnixNano()
	c.now.Store(c.base)
	go func() {
		t := time.NewTicker(resolution)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				c.now.Store(c.base + int64(time.Since(c.start)))
			case <-c.stop:
				return
			}
		}
	}()
	return c
}

// Now returns the last tick's time.
func (c *CoarseClock) Now() int64 { return c.now.Load() }

// Stop ends the ticker.
func (c *CoarseClock) Stop() { c.once.Do(func() { close(c.stop) }) }

// ManualClock is a clock that moves only when told; tests use it to age
// entries without sleeping.
type ManualClock struct{ now atomic.Int64 }

// Now returns the clock's time.
func (c *ManualClock) Now() int64 { return c.now.Load() }

// Set moves the clock to t.
func (c *ManualClock) Set(t int64) { c.now.Store(t) }

// Advance moves the clock on by d.
func (c *ManualClock) Advance(d time.Duration) { c.now.Add(int64(d)) }
