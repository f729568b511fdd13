package bench

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// sendmmsg sends msgs on fd in one call and returns how many went out.
func sendmmsg(fd uintptr, msgs []mmsghdr) (int, unix.Errno) {
	n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(unsafe.SliceData(msgs))), uintptr(len(msgs)), 0, 0, 0)
	return int(n), e
}

// recvmmsg receives up to len(msgs) datagrams on fd in one call.
func recvmmsg(fd uintptr, msgs []mmsghdr) (int, unix.Errno) {
	n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(unsafe.SliceData(msgs))), uintptr(len(msgs)), 0, 0, 0)
	return int(n), e
}
