// Package memport provides in-memory switch ports: Port keeps copies of the
// frames written to it, for tests and the simulator; Sink only counts them,
// for benchmarks that measure the switch and not the port. Both are
// vswitch.Port; memport cannot say so with an assertion, since the switch's
// own tests import it.
package memport

import (
	"errors"
	"sync"
	"sync/atomic"
)

// ErrClosed is returned by writes to a closed port.
var ErrClosed = errors.New("memport: port closed")

// Port records every frame written to it.
type Port struct {
	mu     sync.Mutex
	frames [][]byte
	closed bool
	// OnWrite, when set, is called with each copied frame instead of
	// storing it (the simulator delivers frames this way).
	OnWrite func(frame []byte)
}

// New returns an empty port.
func New() *Port { return &Port{} }

// WriteBatch copies the frames.
func (p *Port) WriteBatch(frames [][]byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, ErrClosed
	}
	for _, f := range frames {
		c := append([]byte(nil), f...)
		if p.OnWrite != nil {
			p.OnWrite(c)
			continue
		}
		p.frames = append(p.frames, c)
	}
	return len(frames), nil
}

// Take returns the frames written since the last Take and forgets them.
func (p *Port) Take() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.frames
	p.frames = nil
	return f
}

// Len is how many frames wait to be taken.
func (p *Port) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.frames)
}

// Close makes further writes fail, as a vanished device would.
func (p *Port) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
}

// Sink counts frames and bytes without keeping them.
type Sink struct {
	Frames atomic.Uint64
	Bytes  atomic.Uint64
}

// WriteBatch counts the frames.
func (s *Sink) WriteBatch(frames [][]byte) (int, error) {
	var b uint64
	for _, f := range frames {
		b += uint64(len(f))
	}
	s.Frames.Add(uint64(len(frames)))
	s.Bytes.Add(b)
	return len(frames), nil
}
