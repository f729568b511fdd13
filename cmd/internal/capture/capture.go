// Package capture mirrors a switch port's frames into a pcap stream: a
// Capture is the port's vswitch.Mirror, copies what it hears into a
// bounded queue (dropping, and counting, when the writer falls behind: it
// never blocks the frame path) and writes the queue out as pcap.
package capture

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	vswitch "github.com/tapswitch/tapswitch/switch"
)

// Snaplen is the pcap file's snapshot length: above the switch's largest
// frame (a 64 KiB GSO super-frame plus Ethernet and a tag), so nothing is
// cut.
const Snaplen = 262144

// Queue bounds: frames and bytes waiting for the writer.
const (
	MaxQueuedFrames = 8192
	MaxQueuedBytes  = 32 << 20
)

// Capture is one capture of one port.
type Capture struct {
	hdrLen int
	limit  int // frames to take; 0: no limit

	mu     sync.Mutex
	q      []record
	qBytes int
	taken  int
	wake   chan struct{}

	dropped atomic.Uint64
}

type record struct {
	t    time.Time
	data []byte
}

// New returns a capture of frames carrying hdrLen bytes of header in front
// of Ethernet (stripped from the pcap), that takes at most count frames (0:
// no limit).
func New(hdrLen, count int) *Capture {
	return &Capture{hdrLen: hdrLen, limit: count, wake: make(chan struct{}, 1)}
}

// Mirror implements vswitch.Mirror: it copies the frames (without their
// virtio-net header) into the queue, or counts them dropped when the queue
// is full. Both directions go into the one stream, as tcpdump on a veth
// shows them.
func (c *Capture) Mirror(_ vswitch.Direction, frames [][]byte) {
	t := time.Now()
	c.mu.Lock()
	for _, f := range frames {
		if c.limit > 0 && c.taken >= c.limit {
			break
		}
		if len(f) < c.hdrLen {
			continue
		}
		eth := f[c.hdrLen:]
		if len(c.q) >= MaxQueuedFrames || c.qBytes+len(eth) > MaxQueuedBytes {
			c.dropped.Add(1)
			continue
		}
		c.q = append(c.q, record{t: t, data: append([]byte(nil), eth...)})
		c.qBytes += len(eth)
		c.taken++
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Dropped is how many frames the writer was too slow for.
func (c *Capture) Dropped() uint64 { return c.dropped.Load() }

// Options end a stream.
type Options struct {
	// Duration ends the capture after this long; 0: no limit.
	Duration time.Duration
	// Alive, when set, is asked once a second whether the port still
	// exists; the capture ends when it does not.
	Alive func() bool
	// Flush, when set, is called after each write (an HTTP response's
	// Flush, so the client sees frames as they come).
	Flush func()
}

// Result is what a stream wrote.
type Result struct {
	Frames  int    `json:"frames"`
	Dropped uint64 `json:"dropped"`
}

// Stream writes a pcap file header and then every frame the capture takes,
// until the frame count is reached, the duration passes, the port goes or
// ctx ends. It returns the first write error.
func (c *Capture) Stream(ctx context.Context, w io.Writer, o Options) (Result, error) {
	var res Result
	pw := pcapgo.NewWriterNanos(w)
	if err := pw.WriteFileHeader(Snaplen, layers.LinkTypeEthernet); err != nil {
		return res, err
	}
	flush := func() {
		if o.Flush != nil {
			o.Flush()
		}
	}
	flush()
	var deadline <-chan time.Time
	if o.Duration > 0 {
		t := time.NewTimer(o.Duration)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var spare []record
	for final := false; ; {
		c.mu.Lock()
		batch := c.q
		c.q, c.qBytes = spare[:0], 0
		done := c.limit > 0 && c.taken >= c.limit
		c.mu.Unlock()
		for i, r := range batch {
			ci := gopacket.CaptureInfo{Timestamp: r.t, CaptureLength: len(r.data), Length: len(r.data)}
			if err := pw.WritePacket(ci, r.data); err != nil {
				res.Dropped = c.Dropped()
				return res, err
			}
			res.Frames++
			batch[i] = record{}
		}
		spare = batch
		if len(batch) > 0 {
			flush()
		}
		if done || final {
			break
		}
		select {
		case <-c.wake:
		case <-ctx.Done():
			final = true // the reader is gone: stop without draining
			done = true
		case <-deadline:
			final = true // write what came in until now, then stop
		case <-tick.C:
			final = o.Alive != nil && !o.Alive()
		}
		if done {
			break
		}
	}
	res.Dropped = c.Dropped()
	return res, nil
}
