package dataplane

import (
	"errors"
	"fmt"
	"time"

	"github.com/tapswitch/tapswitch/tap"
)

// A Dispatcher is a read mode: it owns the loop that reads a port's queues
// and hands every batch to the queue's Rx.Receive (pausing the queue for as
// long as Receive says), and every failed read to Rx.Fail. What a batch or a
// failure means is the Rx's business, the same in every mode.
type Dispatcher interface {
	// Polled says whether the queues this dispatcher reads must be opened
	// for a poller (tap.PodConfig.Polled and friends).
	Polled() bool
	// Serve starts reading the queues of rxs: all of them, or on failure
	// none.
	Serve(rxs []*Rx) error
	// Stop ends reading the queues of rxs and closes them. When it returns
	// no read of them is in flight and nothing calls their Rx.
	Stop(rxs []*Rx) error
}

var (
	_ Dispatcher = Readers{}
	_ Dispatcher = (*Poller)(nil)
)

// Readers is the default read mode: a reader goroutine per queue, parked
// in the Go netpoller while the queue is empty, reading up to Batch frames
// at a time and running each batch through the switch to completion. An
// idle queue costs nothing; a frame that arrives on one costs a thread
// wake-up.
type Readers struct {
	Batch int // most frames per read
}

// Polled is false: the netpoller watches the queues.
func (Readers) Polled() bool { return false }

// Serve starts a reader goroutine per queue.
func (r Readers) Serve(rxs []*Rx) error {
	if r.Batch < 1 {
		return fmt.Errorf("readers: batch %d: want at least 1", r.Batch)
	}
	for _, rx := range rxs {
		rx.wg.Add(1)
		go r.read(rx)
	}
	return nil
}

// Stop closes the queues, which wakes their readers, and waits for them.
func (Readers) Stop(rxs []*Rx) error {
	var errs []error
	for _, rx := range rxs {
		errs = append(errs, rx.q.Close())
	}
	for _, rx := range rxs {
		rx.wg.Wait()
	}
	return errors.Join(errs...)
}

// read is one queue's reader: read a batch, forward it, run to completion.
// Its arena is allocated once; the loop allocates nothing per frame.
func (r Readers) read(rx *Rx) {
	defer rx.wg.Done()
	arena := make([]byte, tap.ArenaSize(r.Batch))
	frames := make([][]byte, r.Batch)
	for {
		n, err := rx.q.ReadBatch(arena, frames)
		if err != nil {
			rx.Fail(err)
			return
		}
		if d := rx.Receive(frames[:n]); d > 0 {
			time.Sleep(d)
		}
	}
}

// Poller is the spinning read mode: one tap.Poller reads every queue of
// every port from one goroutine on a thread of its own, and keeps polling
// for a while after the last frame before it sleeps. It trades a core's
// worth of polling for latency: a request/response exchange then costs no
// thread wake-up per frame. Its queues must be opened with tap's Polled.
type Poller struct{ p *tap.Poller }

// NewPoller starts a poller.
func NewPoller(cfg tap.PollerConfig) (*Poller, error) {
	p, err := tap.NewPoller(cfg)
	if err != nil {
		return nil, err
	}
	return &Poller{p: p}, nil
}

// Close stops the poller; its ports are to be closed first.
func (p *Poller) Close() { p.p.Close() }

// Polled is true: the queues must stay out of the Go netpoller.
func (*Poller) Polled() bool { return true }

// Serve adds the queues to the poller. Each queue's handler (the method
// value rx.Receive) is made here, once: the poller calls it per batch
// without allocating.
func (p *Poller) Serve(rxs []*Rx) error {
	for i, rx := range rxs {
		if err := p.p.Add(rx.q, rx.Receive, rx.Fail); err != nil {
			for _, rx := range rxs[:i] {
				p.p.Remove(rx.q)
			}
			return err
		}
	}
	return nil
}

// Stop takes the queues out of the poller, then closes them: in that order,
// so that the poller never reads a file descriptor number the kernel has
// given to another file meanwhile.
func (p *Poller) Stop(rxs []*Rx) error {
	for _, rx := range rxs {
		p.p.Remove(rx.q)
	}
	var errs []error
	for _, rx := range rxs {
		errs = append(errs, rx.q.Close())
	}
	return errors.Join(errs...)
}
