package tap

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The system calls that hand the kernel a pointer the unix package has no
// wrapper for, in one file.

// rawRead is read(2) without the runtime's entersyscall/exitsyscall, for the
// Poller, whose thread is busy polling anyway: the fd is non-blocking, so the
// call never sleeps, and telling the scheduler about it would only wake sysmon.
// (The netpoller readers use unix.Read: after an idle spell each of their
// entersyscalls wakes sysmon, which keeps the CPUs out of halt, and the raw
// call made their latency worse; BENCHMARKS.md, "Work to win".)
func rawRead(fd uintptr, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	n, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// epollPoll is epoll_wait with a zero timeout, as a raw system call: it
// never blocks, so the runtime need not hand the thread's P to another
// thread (or wake sysmon to do so) for it.
func epollPoll(epfd int, events []unix.EpollEvent) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_WAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// attachFilter sets the socket filter fprog on the TAP queue fd
// (TUNATTACHFILTER).
func attachFilter(fd int, fprog *unix.SockFprog) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNATTACHFILTER, uintptr(unsafe.Pointer(fprog)))
	if errno != 0 {
		return errno
	}
	return nil
}
