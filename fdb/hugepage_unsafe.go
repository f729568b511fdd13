//go:build linux

package fdb

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugePages asks the kernel to back a large slot array with transparent huge
// pages. Lookups land on random slots; with small pages a large table spans
// thousands of pages and nearly every lookup also misses the TLB. Called on
// a fresh allocation before it is written, so the first touch faults in huge
// pages. Best effort: where THP is off the call changes nothing.
func hugePages(s []slot) {
	const huge = 2 << 20
	size := uintptr(len(s)) * unsafe.Sizeof(slot{})
	if size < 2*huge {
		return
	}
	start := uintptr(unsafe.Pointer(&s[0]))
	lo := (start + huge - 1) &^ (huge - 1)
	hi := (start + size) &^ (huge - 1)
	if hi <= lo {
		return
	}
	_, _, _ = unix.Syscall(unix.SYS_MADVISE, lo, hi-lo, unix.MADV_HUGEPAGE)
}
