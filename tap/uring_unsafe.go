package tap

import (
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// uring is a minimal io_uring that writes a batch of frames to one fd in
// one io_uring_enter(2): a TAP takes one frame per write, so without it a
// batch of n frames to one pod costs n system calls.
//
// Only what WriteBatch needs: IORING_OP_WRITE linked in a chain
// (IOSQE_IO_LINK), so that a failed frame cancels the ones after it and
// the batch stops there as write(2) one at a time would, submitted and
// waited for in the same call. The frames are written inline by the
// submitting thread (the fd is non-blocking and a TAP write never waits),
// and the call returns with every completion posted.
type uring struct {
	fd      int
	entries uint32
	sqMem   []byte // the SQ and CQ rings (one mapping: IORING_FEAT_SINGLE_MMAP)
	sqeMem  []byte

	sqHead, sqTail *uint32
	sqMask         *uint32
	sqArray        unsafe.Pointer // uint32[entries]
	cqHead, cqTail *uint32
	cqMask         *uint32
	cqes           unsafe.Pointer // ioUringCQE[cq entries]
	sqes           unsafe.Pointer // ioUringSQE[entries]
}

const (
	sysIoUringSetup = 425
	sysIoUringEnter = 426

	ioringOpWrite        = 23
	iosqeIOLink          = 1 << 2
	ioringEnterGetEvents = 1 << 0
	ioringFeatSingleMmap = 1 << 0
	ioringOffSqRing      = 0
	ioringOffSqes        = 0x10000000
)

type ioSqringOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type ioCqringOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

type ioUringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  ioSqringOffsets
	cqOff                                                                  ioCqringOffsets
}

type ioUringSQE struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64
	addr        uint64
	len         uint32
	rwFlags     uint32
	userData    uint64
	bufIndex    uint16
	personality uint16
	spliceFdIn  int32
	addr3       uint64
	pad2        uint64
}

type ioUringCQE struct {
	userData uint64
	res      int32
	flags    uint32
}

// uringEntries is a queue's ring size: the most frames one call writes.
const uringEntries = 64

// useURing says whether queues write batches through an io_uring (when
// the kernel lets them); TAPSWITCH_TAP_URING=0 turns it off. A small frame
// costs the switch mostly its system call, and the ring takes one call per
// batch; bulk TCP's 64 KiB frames neither gain nor lose (BENCHMARKS.md).
var useURing = os.Getenv("TAPSWITCH_TAP_URING") != "0"

// newURing sets up a ring of entries submissions, or fails (io_uring
// disabled by sysctl, refused by a seccomp profile, an old kernel): the
// caller then writes one frame per write(2).
func newURing(entries uint32) (*uring, error) {
	var p ioUringParams
	fd, _, e := unix.Syscall(sysIoUringSetup, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if e != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", e)
	}
	r := &uring{fd: int(fd), entries: p.sqEntries}
	if p.features&ioringFeatSingleMmap == 0 {
		r.close()
		return nil, fmt.Errorf("io_uring: no IORING_FEAT_SINGLE_MMAP (kernel before 5.4)")
	}
	sqSize := uintptr(p.sqOff.array) + uintptr(p.sqEntries)*4
	cqSize := uintptr(p.cqOff.cqes) + uintptr(p.cqEntries)*unsafe.Sizeof(ioUringCQE{})
	size := max(sqSize, cqSize)
	mem, err := unix.Mmap(r.fd, ioringOffSqRing, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		r.close()
		return nil, fmt.Errorf("io_uring: mmap rings: %w", err)
	}
	r.sqMem = mem
	sqes, err := unix.Mmap(r.fd, ioringOffSqes, int(uintptr(p.sqEntries)*unsafe.Sizeof(ioUringSQE{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		r.close()
		return nil, fmt.Errorf("io_uring: mmap sqes: %w", err)
	}
	r.sqeMem = sqes
	base := unsafe.Pointer(&mem[0])
	r.sqHead = (*uint32)(unsafe.Add(base, p.sqOff.head))
	r.sqTail = (*uint32)(unsafe.Add(base, p.sqOff.tail))
	r.sqMask = (*uint32)(unsafe.Add(base, p.sqOff.ringMask))
	r.sqArray = unsafe.Add(base, p.sqOff.array)
	r.cqHead = (*uint32)(unsafe.Add(base, p.cqOff.head))
	r.cqTail = (*uint32)(unsafe.Add(base, p.cqOff.tail))
	r.cqMask = (*uint32)(unsafe.Add(base, p.cqOff.ringMask))
	r.cqes = unsafe.Add(base, p.cqOff.cqes)
	r.sqes = unsafe.Pointer(&sqes[0])
	return r, nil
}

func (r *uring) close() {
	if r.sqeMem != nil {
		unix.Munmap(r.sqeMem)
	}
	if r.sqMem != nil {
		unix.Munmap(r.sqMem)
	}
	unix.Close(r.fd)
}

// writeChain writes frames to fd, at most r.entries of them, as one linked
// chain: it returns how many were written before the first that failed,
// and that one's error. It waits for every completion, so the frames are
// the kernel's only during the call.
func (r *uring) writeChain(fd int, frames [][]byte) (int, error) {
	n := min(len(frames), int(r.entries))
	tail := atomic.LoadUint32(r.sqTail)
	mask := *r.sqMask
	for i := range n {
		idx := (tail + uint32(i)) & mask
		sqe := (*ioUringSQE)(unsafe.Add(r.sqes, uintptr(idx)*unsafe.Sizeof(ioUringSQE{})))
		f := frames[i]
		*sqe = ioUringSQE{
			opcode: ioringOpWrite, fd: int32(fd), off: ^uint64(0),
			addr: uint64(uintptr(unsafe.Pointer(unsafe.SliceData(f)))), len: uint32(len(f)), userData: uint64(i),
		}
		if i < n-1 {
			sqe.flags = iosqeIOLink
		}
		*(*uint32)(unsafe.Add(r.sqArray, uintptr(idx)*4)) = idx
	}
	atomic.StoreUint32(r.sqTail, tail+uint32(n))
	var err error
	for {
		// Submit what the kernel has not taken yet and wait for the
		// chain's completions: one call, unless a signal cut it short.
		done := atomic.LoadUint32(r.cqTail) - atomic.LoadUint32(r.cqHead)
		if int(done) >= n {
			break
		}
		submit := atomic.LoadUint32(r.sqTail) - atomic.LoadUint32(r.sqHead)
		_, _, e := unix.Syscall6(sysIoUringEnter, uintptr(r.fd), uintptr(submit), uintptr(n-int(done)), ioringEnterGetEvents, 0, 0)
		if e != 0 && e != unix.EINTR {
			// Take back what the kernel did not consume, so that no later
			// call submits frames this one's caller has since reused.
			atomic.StoreUint32(r.sqTail, atomic.LoadUint32(r.sqHead))
			err = ringError{e}
			break
		}
	}
	runtime.KeepAlive(frames)
	// Completions of a chain arrive in order; the first failure is where
	// the batch stops (the later ones were cancelled, unwritten).
	written, ferr := 0, error(nil)
	head := atomic.LoadUint32(r.cqHead)
	ctail := atomic.LoadUint32(r.cqTail)
	cmask := *r.cqMask
	for ; head != ctail; head++ {
		c := (*ioUringCQE)(unsafe.Add(r.cqes, uintptr(head&cmask)*unsafe.Sizeof(ioUringCQE{})))
		switch {
		case c.res >= 0 && ferr == nil:
			written++
		case c.res < 0 && ferr == nil:
			ferr = unix.Errno(-c.res)
		}
	}
	atomic.StoreUint32(r.cqHead, head)
	if ferr == nil {
		ferr = err
	}
	return written, ferr
}

// ringError is a failure of io_uring_enter itself, not of a frame's write:
// the queue then drops the ring and writes one frame per write(2).
type ringError struct{ errno unix.Errno }

func (e ringError) Error() string { return "io_uring_enter: " + e.errno.Error() }
func (e ringError) Unwrap() error { return e.errno }
