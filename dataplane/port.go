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

// link joins one TAP device to the switch: it is the switch's Port for the
// device (writes go out through the device's queues) and has each batch read
// from the device handed to the switch: by one reader goroutine per queue,
// parked in the Go netpoller, or, when the daemon spins, by the daemon's one
// poller.
type link struct {
	name   string
	dev    *tap.Device
	queues []*tap.Queue
	id     fdb.PortID
	rr     atomic.Uint32 // spreads writers over the queues
	poller *tap.Poller   // nil: reader goroutines

	closing atomic.Bool
	wg      sync.WaitGroup
	once    sync.Once
	onGone  func(error) // called once, from a new goroutine, when the device vanished
	police  *policer    // nil: read as fast as frames come
}

// WriteBatch sends frames out through one of the device's queues. Any queue
// reaches the same stack, and the kernel delivers a write synchronously in
// the writer's context, so spreading writers over the queues only spreads
// the queues' locks; it does not reorder a flow.
func (l *link) WriteBatch(frames [][]byte) (int, error) {
	q := l.queues[0]
	if n := len(l.queues); n > 1 {
		q = l.queues[int(l.rr.Add(1))%n]
	}
	return q.WriteBatch(frames)
}

// start registers the device as a switch port and starts reading it.
func (l *link) start(sw *vswitch.Switch, pc vswitch.PortConfig, batch int) error {
	l.queues = l.dev.Queues()
	if len(l.queues) == 0 {
		return errors.New("device has no queues")
	}
	id, err := sw.AddPort(l, pc)
	if err != nil {
		return err
	}
	l.id = id
	ins := make([]*vswitch.Ingress, len(l.queues))
	for i := range l.queues {
		if ins[i], err = sw.Ingress(id); err != nil {
			sw.RemovePort(id)
			return err
		}
	}
	if l.poller != nil {
		return l.startPolled(sw, ins)
	}
	for i, q := range l.queues {
		l.wg.Add(1)
		go l.read(sw, q, ins[i], batch)
	}
	return nil
}

// read is one queue's reader: read a batch, forward it, run to completion.
// Its arena is allocated once; the loop allocates nothing per frame.
func (l *link) read(sw *vswitch.Switch, q *tap.Queue, in *vswitch.Ingress, batch int) {
	defer l.wg.Done()
	arena := make([]byte, tap.ArenaSize(batch))
	frames := make([][]byte, batch)
	for {
		n, err := q.ReadBatch(arena, frames)
		if err != nil {
			if errors.Is(err, os.ErrClosed) || l.closing.Load() {
				return
			}
			// The device or its namespace vanished (tap.IsGone), or the
			// queue broke in some other way: either way this port
			// cannot carry frames any more. The handler takes the
			// daemon's lock, which a caller of stop may hold while it
			// waits for this goroutine: hence a new goroutine.
			l.once.Do(func() {
				if l.onGone != nil {
					go l.onGone(err)
				}
			})
			return
		}
		in.Receive(frames[:n])
		if l.police != nil {
			if d := l.police.charge(n, sw.Now()); d > 0 {
				time.Sleep(d)
			}
		}
	}
}

// startPolled hands the queues to the poller. Each queue's handler is made
// here, once: the poller calls it per batch without allocating.
func (l *link) startPolled(sw *vswitch.Switch, ins []*vswitch.Ingress) error {
	onErr := func(err error) {
		l.once.Do(func() {
			if l.onGone != nil && !l.closing.Load() {
				l.onGone(err) // the poller calls this from a goroutine of its own
			}
		})
	}
	for i, q := range l.queues {
		in := ins[i]
		handle := func(frames [][]byte) time.Duration {
			in.Receive(frames)
			if l.police != nil {
				return l.police.charge(len(frames), sw.Now())
			}
			return 0
		}
		if err := l.poller.Add(q, handle, onErr); err != nil {
			for _, q := range l.queues[:i] {
				l.poller.Remove(q)
			}
			sw.RemovePort(l.id)
			return err
		}
	}
	return nil
}

// policer caps the frames a port's readers take from its TAP per second,
// in 10 ms slots shared by the port's queues. Over the cap a reader sleeps
// out the slot (the poller pauses the queue instead): the TAP's queue fills and the kernel drops the excess in the
// sending pod's context, so a pod flooding the switch pays for its flood
// instead of the switch's readers (and every other pod) paying for it.
type policer struct {
	per   int64 // frames per slot
	slot  atomic.Int64
	count atomic.Int64
}

const policeSlot = int64(10 * time.Millisecond)

func newPolicer(pps int) *policer {
	return &policer{per: max(int64(pps)*policeSlot/int64(time.Second), 1)}
}

// charge counts n frames read at now (the switch's clock, nanoseconds: a
// coarse one, read once per batch by the switch anyway) and returns how
// long to sleep when the slot's budget is spent.
func (p *policer) charge(n int, now int64) time.Duration {
	cur := now - now%policeSlot
	if s := p.slot.Load(); s != cur && p.slot.CompareAndSwap(s, cur) {
		p.count.Store(0)
	}
	if p.count.Add(int64(n)) <= p.per {
		return 0
	}
	return time.Duration(cur + policeSlot - now)
}

// stop closes the device's queues and waits for the readers. The caller
// removes the port from the switch.
func (l *link) stop() error {
	l.closing.Store(true)
	if l.poller != nil {
		for _, q := range l.queues {
			l.poller.Remove(q) // before the close: the poller must not read a reused fd
		}
	}
	err := l.dev.Close()
	l.wg.Wait()
	return err
}
