package tap

import (
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// readRing reads a burst of frames from one TAP queue in one
// io_uring_enter(2), where read(2) takes a system call per frame (a TAP
// hands out one frame per read).
//
// The reads are not kept outstanding: the reader still waits for the queue
// to become readable in the Go netpoller, as without the ring, and only
// then submits k reads at once, each with RWF_NOWAIT, so that the kernel
// runs them one after another in the calling thread, inline, and fails
// those that find the queue empty with EAGAIN instead of arming a poll for
// them. So the frames arrive in the queue's order, every completion is
// posted when the call returns, and no read is the kernel's afterwards.
// (Reads armed in the kernel would each wait on the queue, and a burst of
// frames wakes them in no particular order: the frames would be
// reordered.)
//
// A read must have room for the largest frame, or the kernel cuts the
// frame to fit; so each read has a slot of BufSize bytes of its own,
// mapped outside the Go heap. A small frame touches only the first page of
// its slot, so a queue of small frames holds a page per slot. Frames longer
// than a page (TCP's 64 KiB super-frames) gain nothing from the ring,
// since copying them costs more than the system call; after one of them
// the queue reads with read(2) straight into the caller's arena for a
// while and hands the slots' pages back to the kernel (see bulkHold).
// The frames go from the slots into the caller's arena, so ReadBatch's
// contract is the same either way.
type readRing struct {
	ring *uring
	mem  []byte // the slots, slot bytes each
	slot int    // BufSize rounded up to a page
	page int
	lens []int32 // a frame's length in each slot after a round; 0: none
	// Frames of the last round not yet delivered (they did not fit the
	// caller's arena): slots next..len(lens)-1 with lens > 0.
	next  int
	held  bool
	dirty bool   // a slot was written past its first page
	want  int    // reads the next round submits: what the last one found, and one more
	full  bool   // every read of the last round found a frame
	read  int    // frames read through the ring, for tests
	flags uint32 // of each read: RWF_NOWAIT (tests take it away)
}

// useURingRead says whether ReadBatch reads bursts of frames through an
// io_uring (when the kernel lets it): on unless TAPSWITCH_TAP_URING_READ=0,
// or TAPSWITCH_TAP_URING=0, which turns every io_uring off.
var useURingRead = useURing && os.Getenv("TAPSWITCH_TAP_URING_READ") != "0"

const (
	ioringOpRead        = 22
	ioringOpAsyncCancel = 14
	rwfNowait           = 0x8
)

// bulkHold is how many ReadBatch calls in a row must see no frame longer
// than a page before a queue that saw one goes back to the ring.
const bulkHold = 256

// newReadRing sets up a ring for bursts of up to n reads, or fails (see
// newURing); the caller then reads with read(2).
func newReadRing(n int) (*readRing, error) {
	n = min(max(n, 1), uringEntries)
	r, err := newURing(uint32(n))
	if err != nil {
		return nil, err
	}
	page := os.Getpagesize()
	slot := (BufSize + page - 1) &^ (page - 1)
	// MAP_NORESERVE: most of each slot is never touched.
	mem, err := unix.Mmap(-1, 0, n*slot, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		r.close()
		return nil, err
	}
	return &readRing{ring: r, mem: mem, slot: slot, page: page, lens: make([]int32, n), want: n, flags: rwfNowait}, nil
}

func (rr *readRing) close() {
	rr.ring.close()
	unix.Munmap(rr.mem)
}

// release hands the slots' pages back to the kernel, when large frames
// made them resident.
func (rr *readRing) release() {
	if rr.dirty {
		unix.Madvise(rr.mem, unix.MADV_DONTNEED)
		rr.dirty = false
	}
}

// round reads up to k frames from fd into the slots, in one call. It
// returns how many slots hold a frame and, when none does, the first
// read's error (EAGAIN: the queue is empty). A ringError means the ring
// itself failed or cannot read from fd: the caller should drop it.
func (rr *readRing) round(fd int, k int) (int, error) {
	r := rr.ring
	k = min(k, len(rr.lens))
	tail := atomic.LoadUint32(r.sqTail)
	mask := *r.sqMask
	base := uintptr(unsafe.Pointer(unsafe.SliceData(rr.mem)))
	for i := range k {
		idx := (tail + uint32(i)) & mask
		sqe := (*ioUringSQE)(unsafe.Add(r.sqes, uintptr(idx)*unsafe.Sizeof(ioUringSQE{})))
		*sqe = ioUringSQE{
			opcode: ioringOpRead, fd: int32(fd), off: ^uint64(0),
			addr: uint64(base + uintptr(i*rr.slot)), len: BufSize, rwFlags: rr.flags, userData: uint64(i),
		}
		*(*uint32)(unsafe.Add(r.sqArray, uintptr(idx)*4)) = idx
		rr.lens[i] = 0
	}
	atomic.StoreUint32(r.sqTail, tail+uint32(k))
	for atomic.LoadUint32(r.sqHead) != atomic.LoadUint32(r.sqTail) {
		// Every read completes inline (RWF_NOWAIT), so no wait for
		// completions is asked for: they are posted by the time the call
		// returns.
		submit := atomic.LoadUint32(r.sqTail) - atomic.LoadUint32(r.sqHead)
		_, _, e := unix.Syscall6(sysIoUringEnter, uintptr(r.fd), uintptr(submit), 0, 0, 0, 0)
		if e != 0 && e != unix.EINTR {
			// Take back what the kernel did not consume, and wait for
			// what it did.
			head := atomic.LoadUint32(r.sqHead)
			atomic.StoreUint32(r.sqTail, head)
			for i := int(head - tail); i < k; i++ {
				rr.lens[i] = -int32(unix.ECANCELED)
			}
			rr.reap()
			rr.drain(k)
			return 0, ringError{e}
		}
	}
	if rr.reap() < k {
		// A read the kernel kept (a kernel that ignores RWF_NOWAIT here):
		// it would write into a slot later, and out of order.
		rr.drain(k)
		return 0, ringError{unix.EOPNOTSUPP}
	}
	got := 0
	var err error
	for i := range k {
		switch m := rr.lens[i]; {
		case m > 0:
			got++
			if int(m) > rr.page {
				rr.dirty = true
			}
		case m < 0 && err == nil:
			err = unix.Errno(-m)
		}
	}
	// A read that finds the queue empty costs about as much as one that
	// finds a frame: the next round asks for what this one found and one
	// more, twice as many when all of them found one.
	rr.full = got == k
	if rr.full {
		rr.want = min(2*k, len(rr.lens))
	} else {
		rr.want = got + 1
	}
	if got > 0 {
		rr.read += got
		rr.next, rr.held = 0, true
		return got, nil
	}
	switch err {
	case unix.EOPNOTSUPP, unix.EINVAL:
		// RWF_NOWAIT refused (a kernel or file that cannot read
		// without waiting), or IORING_OP_READ unknown (before 5.6).
		return 0, ringError{err.(unix.Errno)}
	}
	return 0, err
}

// reap takes the posted completions into lens and returns how many of the
// round's reads have completed.
func (rr *readRing) reap() int {
	r := rr.ring
	head := atomic.LoadUint32(r.cqHead)
	ctail := atomic.LoadUint32(r.cqTail)
	cmask := *r.cqMask
	n := 0
	for ; head != ctail; head++ {
		c := (*ioUringCQE)(unsafe.Add(r.cqes, uintptr(head&cmask)*unsafe.Sizeof(ioUringCQE{})))
		if c.userData < uint64(len(rr.lens)) { // not a cancellation's own
			i := int(c.userData)
			rr.lens[i] = c.res
			if c.res == 0 {
				rr.lens[i] = -int32(unix.EAGAIN) // an empty read is no frame
			}
			n++
		}
	}
	atomic.StoreUint32(r.cqHead, head)
	return n
}

// drain cancels the round's reads that have not completed and waits until
// every one has, so that nothing writes into the slots afterwards; then it
// forgets the round.
func (rr *readRing) drain(k int) {
	r := rr.ring
	cancelled := false
	for {
		n := 0
		tail := atomic.LoadUint32(r.sqTail)
		mask := *r.sqMask
		for i := range k {
			if rr.lens[i] != 0 || cancelled {
				continue
			}
			idx := (tail + uint32(n)) & mask
			sqe := (*ioUringSQE)(unsafe.Add(r.sqes, uintptr(idx)*unsafe.Sizeof(ioUringSQE{})))
			*sqe = ioUringSQE{opcode: ioringOpAsyncCancel, fd: -1, addr: uint64(i), userData: ^uint64(0)}
			*(*uint32)(unsafe.Add(r.sqArray, uintptr(idx)*4)) = idx
			n++
		}
		if n == 0 && !cancelled {
			break // all completed
		}
		cancelled = true
		atomic.StoreUint32(r.sqTail, tail+uint32(n))
		submit := atomic.LoadUint32(r.sqTail) - atomic.LoadUint32(r.sqHead)
		_, _, e := unix.Syscall6(sysIoUringEnter, uintptr(r.fd), uintptr(submit), 1, ioringEnterGetEvents, 0, 0)
		if e != 0 && e != unix.EINTR {
			// Nothing more to do: the ring is dropped with its slots
			// left mapped, as a read may still write into them.
			rr.mem = nil
			return
		}
		rr.reap()
		done := true
		for i := range k {
			done = done && rr.lens[i] != 0
		}
		if done {
			break
		}
	}
	for i := range k {
		rr.lens[i] = 0
	}
}

// deliver copies the frames of the last round, in order, into arena after
// the n frames (off bytes) already there, as ReadBatch hands them out: one
// after another, each as long as it came, and returns the new count. A
// frame that does not fit what is left of arena waits for the next call,
// unless it is the call's first, which is cut to fit, as the kernel
// would cut it.
func (rr *readRing) deliver(arena []byte, frames [][]byte, n, off int) int {
	for ; rr.next < len(rr.lens) && n < len(frames); rr.next++ {
		m := int(rr.lens[rr.next])
		if m <= 0 {
			continue
		}
		if n > 0 && m > len(arena)-off {
			return n
		}
		m = copy(arena[off:], rr.mem[rr.next*rr.slot:rr.next*rr.slot+m])
		frames[n] = arena[off : off+m : off+m]
		off += m
		n++
		rr.lens[rr.next] = 0
	}
	for rr.next < len(rr.lens) && rr.lens[rr.next] <= 0 {
		rr.next++
	}
	rr.held = rr.next < len(rr.lens)
	return n
}
