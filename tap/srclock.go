package tap

import (
	"encoding/binary"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// LockSource makes the TAP drop, in the kernel, every frame the pod sends
// from a source MAC other than mac. The switch has its own check
// (vswitch.PortConfig.LockMAC); this one stops a pod's MAC flood before the
// switch has to read it, in the flooding pod's own CPU time, as rx_pps does
// for its rate.
//
// The filter is a classic BPF program on the TAP's queues (TUNATTACHFILTER),
// which the kernel runs in the TAP's transmit function itself. Unlike a tc
// egress filter in the pod's namespace, nothing the pod can do skips it: a
// packet socket with PACKET_QDISC_BYPASS (CAP_NET_RAW, which containers
// have by default) goes around tc, but not around the device's transmit; and
// it is set on the switch's file descriptors, which the pod cannot reach.
// It replaces a lock set before. It covers the queues open now: this package
// attaches queues with IFF_NOFILTER, so queues opened later (Attach, after a
// restart) run without it until LockSource is called again. The kernel still
// remembers it on the persistent device, for an attach without IFF_NOFILTER
// by someone else, until UnlockSource clears it.
func (d *Device) LockSource(mac net.HardwareAddr) error {
	if len(mac) != 6 {
		return fmt.Errorf("tap %q: lock source: %v is not a MAC", d.name, mac)
	}
	prog := srcLockFilter(mac)
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	err := d.queues[0].control(func(fd int) error {
		// One queue's ioctl sets the filter on every queue attached now.
		// The kernel copies prog in the ioctl; prog stays alive until then
		// through fprog.Filter, which the call keeps alive.
		return attachFilter(fd, &fprog)
	})
	if err != nil {
		return fmt.Errorf("tap %q: lock source %v: TUNATTACHFILTER: %w", d.name, mac, err)
	}
	return nil
}

// UnlockSource removes what LockSource set; a device without it is fine (the
// kernel succeeds for any TAP, filter or not).
func (d *Device) UnlockSource() error {
	err := d.queues[0].control(func(fd int) error {
		return unix.IoctlSetInt(fd, unix.TUNDETACHFILTER, 0)
	})
	if err != nil {
		return fmt.Errorf("tap %q: unlock source: TUNDETACHFILTER: %w", d.name, err)
	}
	return nil
}

// srcLockFilter passes a frame whose source MAC (bytes 6-11) is mac and
// drops any other. A frame too short to hold one fails the loads, which
// drops it too.
func srcLockFilter(mac net.HardwareAddr) []unix.SockFilter {
	hi := binary.BigEndian.Uint32(mac[0:4]) // absolute loads are big-endian
	lo := uint32(binary.BigEndian.Uint16(mac[4:6]))
	return []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 6},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 3, K: hi},
		{Code: unix.BPF_LD | unix.BPF_H | unix.BPF_ABS, K: 10},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: lo},
		{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff}, // the whole frame
		{Code: unix.BPF_RET | unix.BPF_K, K: 0},          // drop
	}
}
