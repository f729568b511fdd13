// Package dataplane joins a node's TAP devices to the switch: a Port is the
// switch's vswitch.Port over one device's queues, and a Dispatcher reads
// those queues and hands each batch to the switch. The path of a frame is
//
//	tap.Queue (read) -> Dispatcher -> Rx.Receive -> vswitch.Ingress.Receive
//	  -> the egress port's Port.WriteBatch -> tap.Queue (write)
//
// run to completion on the goroutine that read the batch. Each read mode
// (a reader goroutine per queue, or one spinning poller for every queue)
// is one Dispatcher; what happens to a batch (the switch, the per-port read
// limit) and to a failed read (the device is gone) is written once, in Rx,
// for both.
//
// The package knows TAP queues and the switch, nothing of the daemon's API,
// configuration or state: the daemon decides which devices become ports and
// what to do when one goes.
package dataplane

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapswitch/tapswitch/fdb"
	vswitch "github.com/tapswitch/tapswitch/switch"
	"github.com/tapswitch/tapswitch/tap"
)

var _ vswitch.Port = (*Port)(nil)

// Config describes a Port to Start.
type Config struct {
	// Port is the switch port's configuration.
	Port vswitch.PortConfig
	// RxPPS caps the frames per second read from the device; 0 reads as fast
	// as frames come. See policeSlot for how.
	RxPPS int
	// OnGone is called once, from a goroutine of its own, when a read fails
	// other than by Close: the device or its namespace vanished (tap.IsGone),
	// or the queue broke some other way. Either way the port cannot carry
	// frames any more; the handler removes it from the switch and closes it.
	OnGone func(err error)
}

// Port joins one TAP device to the switch: it is the switch's Port for the
// device (writes go out through the device's queues), and its Dispatcher
// hands each batch read from the device to the switch.
type Port struct {
	sw     *vswitch.Switch
	dev    *tap.Device
	disp   Dispatcher
	id     fdb.PortID
	queues []*tap.Queue
	rxs    []*Rx
	rr     atomic.Uint32 // spreads writers over the queues

	police  *vswitch.RateWindow // nil: read as fast as frames come
	onGone  func(error)
	closing atomic.Bool
	once    sync.Once
}

// Start adds dev to sw as a port and has disp read its queues. The device's
// queues must have been opened for disp (tap's Polled is disp.Polled()).
// On failure the port is off the switch again; the device stays open, the
// caller's to close.
func Start(sw *vswitch.Switch, dev *tap.Device, disp Dispatcher, cfg Config) (*Port, error) {
	p := &Port{sw: sw, dev: dev, disp: disp, queues: dev.Queues(), onGone: cfg.OnGone}
	if len(p.queues) == 0 {
		return nil, errors.New("device has no queues")
	}
	if cfg.RxPPS > 0 {
		p.police = newPolicer(cfg.RxPPS)
	}
	id, err := sw.AddPort(p, cfg.Port)
	if err != nil {
		return nil, err
	}
	p.id = id
	p.rxs = make([]*Rx, len(p.queues))
	for i, q := range p.queues {
		in, err := sw.Ingress(id)
		if err != nil {
			sw.RemovePort(id)
			return nil, err
		}
		p.rxs[i] = &Rx{port: p, q: q, in: in}
	}
	if err := disp.Serve(p.rxs); err != nil {
		sw.RemovePort(id)
		return nil, err
	}
	return p, nil
}

// ID is the port's ID on the switch.
func (p *Port) ID() fdb.PortID { return p.id }

// Device is the TAP device the port reads and writes.
func (p *Port) Device() *tap.Device { return p.dev }

// Polled says whether a poller reads the port's queues (rather than a
// reader goroutine per queue).
func (p *Port) Polled() bool { return p.disp.Polled() }

// WriteBatch sends frames out through one of the device's queues. Any queue
// reaches the same stack, and the kernel delivers a write synchronously in
// the writer's context, so spreading writers over the queues only spreads
// the queues' locks; it does not reorder a flow.
func (p *Port) WriteBatch(frames [][]byte) (int, error) {
	q := p.queues[0]
	if n := len(p.queues); n > 1 {
		q = p.queues[int(p.rr.Add(1))%n]
	}
	return q.WriteBatch(frames)
}

// Close stops reading and closes the device's queues; when it returns no
// read is in flight and OnGone will not be called any more. The caller
// removes the port from the switch first, so that nothing writes to the
// closing queues.
func (p *Port) Close() error {
	p.closing.Store(true)
	return p.disp.Stop(p.rxs)
}

// Rx is one queue of a port as its Dispatcher sees it: where the batches
// read from the queue go, and where a failed read is reported.
type Rx struct {
	port *Port
	q    *tap.Queue
	in   *vswitch.Ingress // the queue's own: an Ingress serves one reader
	wg   sync.WaitGroup   // the queue's reader goroutine (Readers)
}

// Queue is the queue to read.
func (r *Rx) Queue() *tap.Queue { return r.q }

// Receive forwards a batch read from the queue, frames with their
// virtio-net header first, and charges it to the port's read limit. A
// positive result is how long to read nothing more from the queue: the
// limit is spent until then. It allocates nothing.
func (r *Rx) Receive(frames [][]byte) (pause time.Duration) {
	r.in.Receive(frames)
	if r.port.police != nil {
		// The switch's clock: a coarse one, read once per batch by the
		// switch anyway.
		return r.port.police.Charge(len(frames), r.port.sw.Now())
	}
	return 0
}

// Fail reports that a read of the queue failed with err. Unless the port is
// closing (or err says the queue was closed), the port's OnGone is called,
// once for all its queues, from a new goroutine: the handler takes the
// daemon's lock, which a caller of Close may hold while it waits for the
// goroutine that failed.
func (r *Rx) Fail(err error) {
	p := r.port
	if p.closing.Load() || errors.Is(err, os.ErrClosed) {
		return
	}
	p.once.Do(func() {
		if p.onGone != nil {
			go p.onGone(err)
		}
	})
}

// policeSlot is the rx_pps policer's window. The policer caps the frames a
// port's readers take from its TAP per second, in slots of policeSlot
// shared by the port's queues. Over the cap a queue is not read for the
// rest of the slot (a reader sleeps, the poller pauses the queue): the
// TAP's queue fills and the kernel drops the excess in the sending pod's
// context, so a pod flooding the switch pays for its flood instead of the
// switch's readers (and every other pod) paying for it.
const policeSlot = 10 * time.Millisecond

func newPolicer(pps int) *vswitch.RateWindow { return vswitch.NewRateWindow(pps, policeSlot) }
