package tap

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Queue is one queue of a multi-queue TAP. The kernel spreads a device's outgoing
// flows over its queues, so each queue wants its own reader; frames written to any
// queue reach the same stack.
//
// Calls are safe from several goroutines, but one reader per queue is the intended
// use: concurrent ReadBatch calls on one queue take turns.
type Queue struct {
	file   *os.File
	conn   syscall.RawConn
	label  string // names the queue in errors
	fd     int
	polled bool // served by a Poller, not the netpoller
	closed atomic.Bool

	// The callbacks handed to conn.Read and conn.Write are method values made once
	// in newQueue, with their state here rather than captured, so that a batch
	// allocates nothing. The mutexes guard that state.
	rmu     sync.Mutex
	rarena  []byte
	rframes [][]byte
	rn      int
	rerr    error
	readFn  func(fd uintptr) bool
	rring   *readRing // bursts of reads in one call; nil: one read(2) per frame
	rtried  bool
	rbulk   int // >0: frames longer than a page came lately; read(2) for this many more calls

	wmu       sync.Mutex
	ring      *uring // batches of writes in one call; nil: one write(2) per frame
	ringTried bool
	wframes   [][]byte
	wn        int
	werr      error
	writeFn   func(fd uintptr) bool
}

func newQueue(fd int, label string, polled bool) (*Queue, error) {
	// A non-blocking fd is one os.NewFile registers with the netpoller. A
	// queue for a Poller must stay out of it (or the netpoller would wake a
	// thread on each frame for nobody): it is handed over blocking, then made
	// non-blocking again for the Poller's reads. Its writes then cannot wait
	// for room: a write that would block fails, and the switch counts the
	// frame as a tx-error. A TAP's send buffer is unlimited by default, so
	// that is a frame the kernel would have dropped anyway.
	if polled {
		if err := unix.SetNonblock(fd, false); err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
	}
	f := os.NewFile(uintptr(fd), tunDevice)
	if polled {
		if err := unix.SetNonblock(fd, true); err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", label, err)
		}
	}
	conn, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	q := &Queue{file: f, conn: conn, label: label, fd: fd, polled: polled}
	q.readFn = q.read
	q.writeFn = q.write
	return q, nil
}

// ReadBatch blocks until at least one frame is available, then reads up to
// len(frames) frames without blocking for more, one after another into
// arena: frame i, virtio-net header first, is frames[i], a slice of arena.
// After the first frame it reads another only while BufSize bytes of arena
// remain, since the kernel silently cuts a frame to fit a shorter buffer.
// So an arena of BufSize bytes plus room for the batch's small frames holds
// a batch of MTU-sized frames, or one 64 KiB GSO frame, in a fraction of the
// memory of a BufSize buffer per frame: with 32 pods of 4 queues, each queue
// with a reader, that difference is most of the daemon's RSS.
//
// Where io_uring is available (and not turned off with
// TAPSWITCH_TAP_URING_READ=0 or TAPSWITCH_TAP_URING=0), the frames after
// the first of a burst come through the queue's ring in one system call
// instead of a read(2) each (see readRing); the frames, their order and
// the arena's layout are the same either way.
//
// It fails with an error wrapping os.ErrClosed after Close, and one for
// which IsGone reports true when the device or its namespace has gone away.
func (q *Queue) ReadBatch(arena []byte, frames [][]byte) (int, error) {
	if len(frames) == 0 || len(arena) == 0 {
		return 0, nil
	}
	if q.polled {
		return 0, fmt.Errorf("%s: read: the queue is served by a Poller", q.label)
	}
	q.rmu.Lock()
	defer q.rmu.Unlock()
	if !q.rtried && useURingRead {
		q.setUpReadRing(len(frames))
	}
	if q.rring != nil && q.rring.held {
		// Frames of the last burst that did not fit the caller's arena
		// come first.
		if q.closed.Load() {
			return 0, q.ioErr("read", os.ErrClosed)
		}
		return q.rring.deliver(arena, frames, 0, 0), nil
	}
	q.rarena, q.rframes, q.rn, q.rerr = arena, frames, 0, nil
	err := q.conn.Read(q.readFn)
	n, rerr := q.rn, q.rerr
	q.rarena, q.rframes, q.rerr = nil, nil, nil
	if n > 0 {
		// An error after some frames will recur on the next call; deliver these.
		return n, nil
	}
	if rerr != nil {
		err = rerr
	}
	if err != nil {
		return 0, q.ioErr("read", err)
	}
	return 0, nil
}

// setUpReadRing gives the queue a ring for bursts of up to n reads, once,
// unless it is closed. Without one (io_uring disabled or refused), it reads
// one frame per read(2). The caller holds rmu.
func (q *Queue) setUpReadRing(n int) {
	q.rtried = true
	if !q.closed.Load() {
		q.rring, _ = newReadRing(n)
	}
}

func (q *Queue) read(fd uintptr) bool {
	if rr := q.rring; rr != nil && q.rbulk == 0 && len(q.rframes) > 1 {
		return q.readRing(fd, rr)
	}
	if q.rring != nil {
		q.rring.release()
	}
	n, err := readArena(fd, q.rarena, q.rframes, sysRead)
	q.rn = n
	if q.rring != nil && n > 0 {
		q.rbulk = max(q.rbulk-1, 0)
		for _, f := range q.rframes[:n] {
			if len(f) > q.rring.page {
				q.rbulk = bulkHold
				break
			}
		}
	}
	switch err {
	case nil:
		return true
	case unix.EAGAIN:
		// With frames, deliver them; with none, park in the netpoller
		// until the queue is readable (a Poller is what spins).
		return n > 0
	default:
		q.rerr = err
		return true
	}
}

// readRing reads a burst through the queue's ring. After a burst that
// ended with the queue empty, it first reads one frame with read(2),
// straight into the arena: that read is also the check whether the queue
// holds anything at all, which read(2) answers for less than a round of
// the ring; only after a frame does the rest come through the ring. After
// a burst that found a frame in every read, the queue most likely holds
// more, and the whole burst comes through the ring.
func (q *Queue) readRing(fd uintptr, rr *readRing) bool {
	n, off := 0, 0
	if !rr.full {
		var m int
		for {
			var err error
			m, err = unix.Read(int(fd), q.rarena)
			switch err {
			case nil:
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false // park in the netpoller until the queue is readable
			default:
				q.rerr = err
				return true
			}
			break
		}
		q.rframes[0] = q.rarena[:m:m]
		q.rn, n, off = 1, 1, m
		if m > rr.page {
			// Large frames: read(2) for a while (see readRing).
			q.rbulk = bulkHold
			return true
		}
	}
	_, err := rr.round(int(fd), min(len(q.rframes)-n, rr.want))
	_, ringFailed := err.(ringError) // as is: errors.As would allocate
	switch {
	case err == nil:
		q.rn = rr.deliver(q.rarena, q.rframes, n, off)
		if rr.dirty {
			q.rbulk = bulkHold
		}
		return true
	case n > 0:
		// Any error but the ring's own recurs on the next call, which
		// reports it; this one delivers its frame.
	case err == unix.EAGAIN:
		return false
	case !ringFailed:
		q.rerr = err
		return true
	}
	if ringFailed {
		// The ring cannot read here: read(2) from now on.
		rr.close()
		q.rring = nil
		if n == 0 {
			return q.read(fd)
		}
	}
	return true
}

// ArenaSize is an arena for ReadBatch that holds a frame of any size, or a
// batch of batch MTU-sized frames.
func ArenaSize(batch int) int { return BufSize + (max(batch, 1)-1)*2048 }

// readArena reads frames one after another into arena, as ReadBatch says,
// with read (read(2), told to the scheduler or not). It stops when frames
// is full, when less than BufSize of arena is left after a frame, or at an
// error, which it returns (EAGAIN: the queue is empty).
func readArena(fd uintptr, arena []byte, frames [][]byte, read func(uintptr, []byte) (int, error)) (int, error) {
	n, off := 0, 0
	for n < len(frames) {
		b := arena[off:]
		if n > 0 && len(b) < BufSize {
			return n, nil
		}
		m, err := read(fd, b)
		switch err {
		case nil:
			frames[n] = b[:m:m]
			off += m
			n++
		case unix.EINTR:
		default:
			return n, err
		}
	}
	return n, nil
}

func sysRead(fd uintptr, b []byte) (int, error) { return unix.Read(int(fd), b) }

// WriteBatch writes frames, each a virtio-net header followed by an Ethernet
// frame. A TAP takes one frame per write, so a batch of several goes through
// the queue's io_uring (set up at the first such batch): one io_uring_enter(2)
// for up to 64 frames instead of a write(2) each, which on a machine where
// system calls are dear is most of what a small frame costs the switch.
// Where io_uring is unavailable (disabled, refused by a seccomp profile, or
// with TAPSWITCH_TAP_URING=0 in the environment) each frame takes a
// write(2).
// Either way it stops at the first failure and returns the number of frames
// written before it, so that a caller can skip the bad frame and resume. It
// keeps no reference to frames.
func (q *Queue) WriteBatch(frames [][]byte) (int, error) {
	if len(frames) == 0 {
		return 0, nil
	}
	q.wmu.Lock()
	defer q.wmu.Unlock()
	if !q.ringTried && len(frames) > 1 && useURing {
		q.ringTried = true
		if !q.closed.Load() {
			// Without a ring (io_uring disabled or refused), the frames
			// go one write(2) each.
			q.ring, _ = newURing(uringEntries)
		}
	}
	q.wframes, q.wn, q.werr = frames, 0, nil
	err := q.conn.Write(q.writeFn)
	n, werr := q.wn, q.werr
	q.wframes, q.werr = nil, nil
	if werr != nil {
		err = werr
	}
	if err != nil {
		return n, q.ioErr("write", err)
	}
	return n, nil
}

func (q *Queue) write(fd uintptr) bool {
	for q.wn < len(q.wframes) {
		if q.ring != nil && len(q.wframes)-q.wn > 1 {
			n, err := q.ring.writeChain(int(fd), q.wframes[q.wn:])
			q.wn += n
			_, ringFailed := err.(ringError) // as is: errors.As would allocate
			switch {
			case err == nil, err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				return false
			case ringFailed:
				// The ring itself failed: write(2) from here on.
				q.ring.close()
				q.ring = nil
				continue
			default:
				q.werr = err
				return true
			}
		}
		_, err := unix.Write(int(fd), q.wframes[q.wn])
		switch err {
		case nil:
			q.wn++
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			q.werr = err
			return true
		}
	}
	return true
}

// Close closes the queue's file descriptor and wakes a ReadBatch blocked on it.
// The device itself stays unless this was its last queue and it is not yet
// persistent.
func (q *Queue) Close() error {
	if q.closed.Swap(true) {
		return nil
	}
	err := q.file.Close()
	// After the file's close, which wakes a WriteBatch waiting for room.
	q.wmu.Lock()
	if q.ring != nil {
		q.ring.close()
		q.ring = nil
	}
	q.ringTried = true
	q.wmu.Unlock()
	// After the file's close, which wakes a ReadBatch waiting for frames.
	q.rmu.Lock()
	if q.rring != nil {
		q.rring.close()
		q.rring = nil
	}
	q.rtried = true
	q.rmu.Unlock()
	if err != nil {
		return fmt.Errorf("%s: %w", q.label, err)
	}
	return nil
}

func (q *Queue) ioErr(op string, err error) error {
	if q.closed.Load() {
		// The netpoller reports a closed file with an internal error value;
		// callers test for os.ErrClosed.
		return fmt.Errorf("%s: %s: %w", q.label, op, os.ErrClosed)
	}
	return fmt.Errorf("%s: %s: %w", q.label, op, err)
}

// control runs fn with the queue's raw fd, for ioctls after creation.
func (q *Queue) control(fn func(fd int) error) error {
	var ferr error
	if err := q.conn.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// ErrGone is wrapped by Device.Check when the device or its namespace has gone.
var ErrGone = errors.New("device or its namespace is gone")

// IsGone reports whether err, from a queue or from Device.Check, means that the
// device no longer exists. When a device is deleted or its namespace destroyed
// the kernel detaches every queue, and reads and writes fail with EBADFD. The
// port should then be dropped and the device closed; only creating it again
// brings it back.
func IsGone(err error) bool {
	return errors.Is(err, unix.EBADFD) || errors.Is(err, ErrGone)
}
