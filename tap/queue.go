package tap

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

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
	closed atomic.Bool

	// The callbacks handed to conn.Read and conn.Write are method values made once
	// in newQueue, with their state here rather than captured, so that a batch
	// allocates nothing. The mutexes guard that state.
	rmu       sync.Mutex
	rbufs     [][]byte
	rsizes    []int
	rn        int
	rerr      error
	readFn    func(fd uintptr) bool
	spin      atomic.Int64 // ns to poll an empty queue before parking; 0: park at once
	spinUntil time.Time

	wmu     sync.Mutex
	wframes [][]byte
	wn      int
	werr    error
	writeFn func(fd uintptr) bool
}

func newQueue(fd int, label string) (*Queue, error) {
	// The fd is non-blocking, so os.NewFile registers it with the netpoller.
	f := os.NewFile(uintptr(fd), tunDevice)
	conn, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	q := &Queue{file: f, conn: conn, label: label}
	q.readFn = q.read
	q.writeFn = q.write
	return q, nil
}

// ReadBatch blocks until at least one frame is available, then reads up to
// len(bufs) frames without blocking for more: frame i, virtio-net header first,
// lands in bufs[i][:sizes[i]]. Buffers of BufSize bytes hold any frame; the
// kernel silently cuts a frame to fit a shorter buffer. It fails
// with an error wrapping os.ErrClosed after Close, and one for which IsGone
// reports true when the device or its namespace has gone away.
func (q *Queue) ReadBatch(bufs [][]byte, sizes []int) (int, error) {
	if len(sizes) < len(bufs) {
		bufs = bufs[:len(sizes)]
	}
	if len(bufs) == 0 {
		return 0, nil
	}
	q.rmu.Lock()
	defer q.rmu.Unlock()
	q.rbufs, q.rsizes, q.rn, q.rerr = bufs, sizes, 0, nil
	err := q.conn.Read(q.readFn)
	n, rerr := q.rn, q.rerr
	q.rbufs, q.rsizes, q.rerr = nil, nil, nil
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

// SetSpin makes ReadBatch poll an empty queue for d before parking in the
// netpoller: lower latency for a busy CPU. 0 (the default) parks at once.
func (q *Queue) SetSpin(d time.Duration) { q.spin.Store(int64(max(d, 0))) }

func (q *Queue) read(fd uintptr) bool {
	for q.rn < len(q.rbufs) {
		n, err := unix.Read(int(fd), q.rbufs[q.rn])
		switch err {
		case nil:
			q.rsizes[q.rn] = n
			q.rn++
		case unix.EINTR:
		case unix.EAGAIN:
			if q.rn > 0 {
				q.spinUntil = time.Time{}
				return true
			}
			// Nothing yet. Parking in the netpoller costs a wake-up
			// (tens of microseconds) when the next frame comes; with a
			// spin set, poll a little longer first.
			if spin := q.spin.Load(); spin > 0 {
				now := time.Now()
				if q.spinUntil.IsZero() {
					q.spinUntil = now.Add(time.Duration(spin))
				}
				if now.Before(q.spinUntil) {
					continue
				}
			}
			q.spinUntil = time.Time{}
			return false
		default:
			q.rerr = err
			return true
		}
	}
	return true
}

// WriteBatch writes frames, each a virtio-net header followed by an Ethernet
// frame, one write(2) per frame as a TAP takes them. It stops at the first
// failure and returns the number of frames written before it, so that a caller
// can skip the bad frame and resume. It keeps no reference to frames.
func (q *Queue) WriteBatch(frames [][]byte) (int, error) {
	if len(frames) == 0 {
		return 0, nil
	}
	q.wmu.Lock()
	defer q.wmu.Unlock()
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
	if err := q.file.Close(); err != nil {
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
