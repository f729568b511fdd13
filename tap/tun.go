package tap

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// VnetHdrLen is the size of the virtio-net header (struct virtio_net_hdr) in
// front of every frame read from or written to a queue.
const VnetHdrLen = 10

// BufSize is enough for any frame a queue returns: the kernel builds GSO packets
// of at most 64 KiB including the Ethernet header; the rest is the virtio-net
// header and slack for a VLAN tag.
const BufSize = VnetHdrLen + 64<<10 + 64

// TUN_F_* from linux/if_tun.h; golang.org/x/sys/unix does not define them.
const (
	tunFCSUM   = 0x01
	tunFTSO4   = 0x02
	tunFTSO6   = 0x04
	tunFTSOECN = 0x08
	tunFUSO4   = 0x20
	tunFUSO6   = 0x40

	offloadsBase = tunFCSUM | tunFTSO4 | tunFTSO6 | tunFTSOECN
	offloadsUSO  = tunFUSO4 | tunFUSO6 // the kernel takes both or neither
)

const tapFlags = unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR | unix.IFF_MULTI_QUEUE

const tunDevice = "/dev/net/tun"

// openTAP opens n queues of the TAP name in the calling thread's namespace and
// sets the header size and offloads, which are per device. With create, the first
// queue carries IFF_TUN_EXCL so an existing device of that name is refused rather
// than adopted; the others then attach to the new device. The fds are
// non-blocking, ready for the Go netpoller. It returns the offloads the kernel
// accepted.
func openTAP(name string, n int, create bool) (fds []int, offloads int, err error) {
	defer func() {
		if err != nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
			fds = nil
			err = fmt.Errorf("tap %q: %w", name, err)
		}
	}()
	for i := range n {
		// IFF_NOFILTER: attach without the source lock's filter that a
		// persistent device keeps from an earlier run (LockSource). The
		// kernel keeps that filter as the user-space address it was set
		// from, and would read it again, in this process, on attach; the
		// daemon sets or clears the lock itself once the device is open.
		flags := uint16(tapFlags | unix.IFF_NOFILTER)
		if create && i == 0 {
			flags |= unix.IFF_TUN_EXCL
		}
		fd, err := openQueue(name, flags)
		if err != nil {
			return fds, 0, fmt.Errorf("queue %d: %w", i, err)
		}
		fds = append(fds, fd)
		if i > 0 {
			continue
		}
		if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, VnetHdrLen); err != nil {
			return fds, 0, fmt.Errorf("TUNSETVNETHDRSZ: %w", err)
		}
		if offloads, err = setOffloads(fd); err != nil {
			return fds, 0, err
		}
	}
	return fds, offloads, nil
}

func openQueue(name string, flags uint16) (int, error) {
	// Opened non-blocking but not yet wrapped in an os.File: epoll refuses a tun fd
	// until TUNSETIFF has attached it (golang/go#30426).
	fd, err := unix.Open(tunDevice, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", tunDevice, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err == nil {
		ifr.SetUint16(flags)
		err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("TUNSETIFF: %w", err)
	}
	return fd, nil
}

// setOffloads asks for UDP segmentation offload too, which kernels before 6.2
// refuse with EINVAL; TCP segmentation is what matters, so it falls back.
func setOffloads(fd int) (int, error) {
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, offloadsBase|offloadsUSO); err == nil {
		return offloadsBase | offloadsUSO, nil
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, offloadsBase); err != nil {
		return 0, fmt.Errorf("TUNSETOFFLOAD: %w", err)
	}
	return offloadsBase, nil
}

// offloadNames spells out TUN_F_* bits for logs and errors.
func offloadNames(f int) string {
	names := []struct {
		bit  int
		name string
	}{{tunFCSUM, "csum"}, {tunFTSO4, "tso4"}, {tunFTSO6, "tso6"}, {tunFTSOECN, "tso_ecn"}, {tunFUSO4, "uso4"}, {tunFUSO6, "uso6"}}
	s := ""
	for _, n := range names {
		if f&n.bit != 0 {
			if s != "" {
				s += "|"
			}
			s += n.name
		}
	}
	return s
}
