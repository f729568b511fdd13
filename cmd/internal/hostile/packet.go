// Package hostile holds the root tests of tapswitch against hostile pods and
// faults on the real dataplane: MAC flooding, ARP and NDP spoofing, rogue
// router advertisements, malformed frames written into a pod's TAP from
// inside its namespace, and a control socket under load. Its one non-test
// file is the attacker's tool, a packet socket that writes raw Ethernet
// frames out of a pod's eth0.
package hostile

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/tap"
)

// Writer sends raw Ethernet frames out of one interface of a network
// namespace, as a pod with CAP_NET_RAW can: an AF_PACKET SOCK_RAW socket
// opened inside the namespace (a socket keeps the namespace it was made in).
// Frames written to a pod's eth0 (a TAP) go to the switch.
type Writer struct {
	fd      int
	ifindex int
	vnet    bool
}

// OpenWriter opens a packet socket on ifname inside netns ns (a path). With
// vnetHdr, the socket has PACKET_VNET_HDR set and every frame written must
// start with a 10-byte struct virtio_net_hdr, which the kernel parses into
// the packet's offload state. The socket is bound with protocol 0, so it
// receives nothing, and bypasses the qdisc, so a flood reaches the TAP as
// fast as the writer can go.
func OpenWriter(ns, ifname string, vnetHdr bool) (*Writer, error) {
	w := &Writer{fd: -1, vnet: vnetHdr}
	err := tap.InNamespace(ns, func() error {
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
		if vnetHdr {
			if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
				return fmt.Errorf("PACKET_VNET_HDR: %w", err)
			}
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			return fmt.Errorf("PACKET_QDISC_BYPASS: %w", err)
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
		return nil, fmt.Errorf("packet socket on %s in %s: %w", ifname, ns, err)
	}
	return w, nil
}

// Write sends one frame (with its virtio-net header first if the writer
// has one). The kernel's refusal (EINVAL, EMSGSIZE) comes back as the error.
func (w *Writer) Write(frame []byte) error {
	for {
		_, err := unix.Write(w.fd, frame)
		if err == unix.EINTR {
			continue
		}
		return err
	}
}

// Close closes the socket.
func (w *Writer) Close() error { return unix.Close(w.fd) }
