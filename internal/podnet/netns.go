package podnet

import (
	"context"
	"fmt"
	"net"
	"time"
)

// Listen opens a stream listener (tcp4, tcp6) on addr inside netns ns (a
// name or a path).
func Listen(ctx context.Context, ns, network, addr string) (net.Listener, error) {
	var l net.Listener
	err := inNS(ns, func() (err error) {
		l, err = (&net.ListenConfig{}).Listen(ctx, network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen %s on %s in netns %s: %w", network, addr, ns, err)
	}
	return l, nil
}

// ListenPacket opens a datagram socket (udp4, udp6) on addr inside netns ns.
func ListenPacket(ctx context.Context, ns, network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := inNS(ns, func() (err error) {
		pc, err = (&net.ListenConfig{}).ListenPacket(ctx, network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen %s on %s in netns %s: %w", network, addr, ns, err)
	}
	return pc, nil
}

// Dial connects from inside netns ns to addr, giving up after 5 seconds.
func Dial(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := inNS(ns, func() (err error) {
		d := net.Dialer{Timeout: 5 * time.Second}
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s %s from netns %s: %w", network, addr, ns, err)
	}
	return c, nil
}
