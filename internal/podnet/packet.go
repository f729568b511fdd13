package podnet

import (
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// FrameWriter sends raw Ethernet frames out of one interface of a network
// namespace, as a pod with CAP_NET_RAW can: an AF_PACKET SOCK_RAW socket
// opened inside the namespace (a socket keeps the namespace it was made in).
// Frames written to a pod's eth0 (a TAP) go to the switch.
type FrameWriter struct {
	fd      int
	ifindex int
	opt     FrameOptions
}

// FrameOptions shape a FrameWriter.
type FrameOptions struct {
	// VnetHdr sets PACKET_VNET_HDR: every frame written must start with a
	// 10-byte struct virtio_net_hdr, which the kernel parses into the
	// packet's offload state.
	VnetHdr bool
	// BypassQdisc sets PACKET_QDISC_BYPASS, so that a flood reaches the TAP
	// as fast as the writer can go. Without it the frames go through the
	// qdisc, as an attack tool's would not, and a capture on the interface
	// sees them.
	BypassQdisc bool
	// Retry makes Write wait and try again while the kernel has no buffer
	// for the frame (ENOBUFS, EAGAIN) instead of returning that error.
	Retry bool
}

// OpenFrameWriter opens a packet socket on ifname inside netns ns (a name
// or a path). The socket is bound with protocol 0, so it receives nothing.
func OpenFrameWriter(ns, ifname string, o FrameOptions) (*FrameWriter, error) {
	w := &FrameWriter{fd: -1, opt: o}
	err := inNS(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		w.ifindex = ifi.Index
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		w.fd = fd
		if o.VnetHdr {
			if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
				return fmt.Errorf("PACKET_VNET_HDR: %w", err)
			}
		}
		if o.BypassQdisc {
			if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
				return fmt.Errorf("PACKET_QDISC_BYPASS: %w", err)
			}
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index}); err != nil {
			return fmt.Errorf("bind to %s: %w", ifname, err)
		}
		return nil
	})
	if err != nil {
		if w.fd >= 0 {
			unix.Close(w.fd)
		}
		return nil, fmt.Errorf("packet socket on %s in netns %s: %w", ifname, ns, err)
	}
	return w, nil
}

// Write sends one frame (with its virtio-net header first if the writer
// has one). The kernel's refusal (EINVAL, EMSGSIZE) comes back as the
// error.
func (w *FrameWriter) Write(frame []byte) error {
	for {
		_, err := unix.Write(w.fd, frame)
		switch {
		case err == unix.EINTR:
			continue
		case w.opt.Retry && (errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EAGAIN)):
			time.Sleep(100 * time.Microsecond)
			continue
		}
		return err
	}
}

// Close closes the socket.
func (w *FrameWriter) Close() error { return unix.Close(w.fd) }
