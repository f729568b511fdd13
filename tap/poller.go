package tap

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A Poller reads many queues on one goroutine locked to its OS thread, from
// an epoll set of its own, and keeps polling that set for a while after the
// last frame before it sleeps.
//
// It exists for latency. A queue's reader parked in the Go netpoller costs a
// thread wake-up per frame that arrives on an idle queue, and on a
// request/response exchange every frame does: two per transaction, each
// crossing the switch. Spinning readers (one per queue) fix that only on a
// machine with a core per reader; with fewer cores they take the CPU the
// pods need. One poller for every queue spins once, for all of them.
//
// It is mechanism only: what a batch means, and what to do when a queue
// fails, is its handlers' business (the dataplane package's Poller read
// mode supplies them).
//
// Queues a Poller serves must be opened with Polled set, so that the Go
// netpoller does not also watch them (and wake a thread for nothing on every
// frame).
type Poller struct {
	epfd   int
	wakefd int // an eventfd in the set: control requests and Close
	spin   time.Duration
	batch  int
	cpu    int

	ctl    chan func()
	mu     sync.Mutex // serializes senders on ctl against Close
	closed bool
	done   chan struct{}

	// Owned by the poller goroutine.
	queues map[int32]*polled
	paused []*polled // queues whose handler asked for a pause, by resume time
}

// PollerConfig configures a Poller.
type PollerConfig struct {
	// Spin is how long the poller keeps polling after the last frame before
	// it sleeps in epoll_wait. 0 sleeps at once.
	Spin time.Duration
	// Batch is the most frames read from one queue per handler call.
	Batch int
	// CPU pins the poller's thread to that CPU; -1 leaves it to the
	// scheduler.
	CPU int
}

// PollHandler is given each batch read from a queue, frames with their
// virtio-net header first. The frames are the poller's buffers: valid until
// the handler returns. A handler that returns a positive duration pauses the
// queue for that long: the poller reads nothing more from it meanwhile, and
// frames the pod sends pile up in (and then drop from) the TAP's queue.
type PollHandler func(frames [][]byte) (pause time.Duration)

type polled struct {
	q      *Queue
	fd     int32 // int32(q.fd), kept here so that a read per event needs no load through q
	handle PollHandler
	onErr  func(error)
	resume time.Time
}

// NewPoller starts a poller.
func NewPoller(cfg PollerConfig) (*Poller, error) {
	if cfg.Batch <= 0 {
		return nil, fmt.Errorf("poller: batch %d: want at least 1", cfg.Batch)
	}
	if cfg.CPU >= 0 {
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(0, &set); err != nil {
			return nil, fmt.Errorf("poller: sched_getaffinity: %w", err)
		}
		if !set.IsSet(cfg.CPU) {
			return nil, fmt.Errorf("poller: cpu %d: not one this process may run on", cfg.CPU)
		}
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("poller: epoll_create1: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("poller: eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wakefd)}); err != nil {
		unix.Close(wakefd)
		unix.Close(epfd)
		return nil, fmt.Errorf("poller: epoll_ctl: %w", err)
	}
	p := &Poller{
		epfd: epfd, wakefd: wakefd, spin: max(cfg.Spin, 0), batch: cfg.Batch, cpu: cfg.CPU,
		ctl: make(chan func(), 16), done: make(chan struct{}), queues: map[int32]*polled{},
	}
	started := make(chan error, 1)
	go p.run(started)
	if err := <-started; err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Add has the poller read q, handing each batch to handle. When a read fails
// (the device vanished: IsGone), the poller drops q and calls onErr once,
// from a new goroutine.
func (p *Poller) Add(q *Queue, handle PollHandler, onErr func(error)) error {
	if !q.polled {
		return fmt.Errorf("%s: not opened for a poller", q.label)
	}
	var err error
	if !p.do(func() {
		e := &polled{q: q, fd: int32(q.fd), handle: handle, onErr: onErr}
		if err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, q.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: e.fd}); err != nil {
			err = fmt.Errorf("%s: epoll_ctl: %w", q.label, err)
			return
		}
		p.queues[e.fd] = e
	}) {
		return errors.New("poller: closed")
	}
	return err
}

// Remove stops reading q. When it returns the poller no longer touches q
// (nor calls its handler), so q may be closed. Removing a queue the poller
// does not hold, or from a closed poller, does nothing.
func (p *Poller) Remove(q *Queue) {
	p.do(func() {
		e := p.queues[int32(q.fd)]
		if e == nil || e.q != q {
			return
		}
		p.drop(e)
	})
}

// Close stops the poller; its queues stay open.
func (p *Poller) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.ctl)
	p.mu.Unlock()
	p.kick()
	<-p.done
	unix.Close(p.wakefd)
	unix.Close(p.epfd)
}

// do runs fn on the poller goroutine and waits for it: the poller's state
// then needs no lock, and a Remove cannot race a batch in flight.
func (p *Poller) do(fn func()) bool {
	ran := make(chan struct{})
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false
	}
	p.ctl <- func() { fn(); close(ran) }
	p.kick() // under mu: after Close the eventfd's number may be another file's
	p.mu.Unlock()
	select {
	case <-ran:
		return true
	case <-p.done:
		return false
	}
}

func (p *Poller) kick() {
	one := [8]byte{1}
	unix.Write(p.wakefd, one[:])
}

func (p *Poller) drop(e *polled) {
	unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(e.fd), nil)
	delete(p.queues, e.fd)
	for i, x := range p.paused {
		if x == e {
			p.paused = append(p.paused[:i], p.paused[i+1:]...)
			break
		}
	}
}

func (p *Poller) run(started chan<- error) {
	defer close(p.done)
	runtime.LockOSThread() // the pinning below is per thread; never unlocked, so the thread dies with the poller
	if p.cpu >= 0 {
		var set unix.CPUSet
		set.Set(p.cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			started <- fmt.Errorf("poller: pin to cpu %d: %w", p.cpu, err)
			return
		}
	}
	started <- nil

	events := make([]unix.EpollEvent, 64)
	arena := make([]byte, ArenaSize(p.batch))
	frames := make([][]byte, p.batch)
	var last time.Time // when a frame last came
	// now is read once per turn, after epoll_wait, and again only when
	// handlers ran since: an idle spin then costs one clock read, not two.
	now := time.Now()
	for {
		var n int
		var err error
		switch {
		case p.spin > 0 && now.Sub(last) < p.spin:
			// Polling: epoll_wait that returns at once, without telling the
			// scheduler (it never sleeps).
			n, err = epollPoll(p.epfd, events)
		default:
			n, err = unix.EpollWait(p.epfd, events, p.timeout(now))
		}
		if err != nil && err != unix.EINTR {
			// Only a bad epfd or events buffer gets here, which is a bug.
			panic(fmt.Sprintf("tap poller: epoll_wait: %v", err))
		}
		now = time.Now()
		p.resume(now)
		got := false
		for _, ev := range events[:max(n, 0)] {
			if ev.Fd == int32(p.wakefd) {
				if !p.control() {
					return
				}
				continue
			}
			e := p.queues[ev.Fd]
			if e == nil {
				continue // removed while handling this same batch of events
			}
			if !e.resume.IsZero() && ev.Events&(unix.EPOLLERR|unix.EPOLLHUP) == 0 {
				continue // paused in this batch; a paused fd still reports errors, which the read below turns into a drop
			}
			k, err := readArena(uintptr(e.fd), arena, frames, rawRead)
			if err == unix.EAGAIN {
				err = nil
			}
			if k > 0 {
				got = true
				if d := e.handle(frames[:k]); d > 0 {
					p.pause(e, now.Add(d))
				}
			}
			if err != nil {
				p.drop(e)
				go e.onErr(e.q.ioErr("read", err))
			}
		}
		if got {
			last = now
			now = time.Now() // the handlers took their time
		}
	}
}

// control drains the eventfd and runs queued requests; false after Close.
func (p *Poller) control() bool {
	var b [8]byte
	unix.Read(p.wakefd, b[:])
	for {
		select {
		case fn, ok := <-p.ctl:
			if !ok {
				return false
			}
			fn()
		default:
			return true
		}
	}
}

// pause takes e out of the epoll set until t.
func (p *Poller) pause(e *polled, t time.Time) {
	unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, int(e.fd), &unix.EpollEvent{Events: 0, Fd: e.fd})
	e.resume = t
	i := len(p.paused)
	for i > 0 && p.paused[i-1].resume.After(t) {
		i--
	}
	p.paused = append(p.paused, nil)
	copy(p.paused[i+1:], p.paused[i:])
	p.paused[i] = e
}

// resume puts back the paused queues whose time has come.
func (p *Poller) resume(now time.Time) {
	i := 0
	for ; i < len(p.paused) && !p.paused[i].resume.After(now); i++ {
		e := p.paused[i]
		e.resume = time.Time{}
		unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, int(e.fd), &unix.EpollEvent{Events: unix.EPOLLIN, Fd: e.fd})
	}
	p.paused = p.paused[i:]
}

// timeout is epoll_wait's: until the next paused queue resumes, else forever.
func (p *Poller) timeout(now time.Time) int {
	if len(p.paused) == 0 {
		return -1
	}
	ms := p.paused[0].resume.Sub(now).Milliseconds() + 1
	return int(max(ms, 0))
}
