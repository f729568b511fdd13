package podnet_test

import (
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/tapswitch/tapswitch/internal/podnet"
	"github.com/tapswitch/tapswitch/internal/testenv"
	"github.com/tapswitch/tapswitch/netns"
)

// pair makes namespaces PREFIX+"a" and PREFIX+"b" joined by a veth pair
// (eth0 in each) with addresses .1 and .2 of a free /24, and sweeps them in
// the cleanup.
func pair(t *testing.T) (a, b string, ipA, ipB netip.Addr) {
	t.Helper()
	if why := testenv.RootSkip(testing.Short()); why != "" {
		t.Skip(why + ": makes network namespaces and a veth pair")
	}
	p := testenv.NewPrefix("tp", 5)
	t.Cleanup(func() {
		if err := testenv.Sweep(p); err != nil {
			t.Error(err)
		}
	})
	sub, err := testenv.FreeSubnet(247)
	if err != nil {
		t.Fatal(err)
	}
	a, b = p+"a", p+"b"
	ipA, ipB = sub.Addr().Next(), sub.Addr().Next().Next()
	for _, ns := range []string{a, b} {
		if err := testenv.QuietNamespace(ns); err != nil {
			t.Fatal(err)
		}
	}
	// Both ends are made inside a (nothing in the host's namespace), then
	// one moves to b.
	err = netns.FromPath(netns.PathOf(a)).Run(func() error {
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "peer"}); err != nil {
			return err
		}
		peer, err := netlink.LinkByName("peer")
		if err != nil {
			return err
		}
		f, err := os.Open(netns.PathOf(b))
		if err != nil {
			return err
		}
		defer f.Close()
		return netlink.LinkSetNsFd(peer, int(f.Fd()))
	})

	if err != nil {
		t.Fatal(err)
	}
	up := func(ns, name string, ip netip.Addr) {
		err := netns.FromPath(netns.PathOf(ns)).Run(func() error {
			l, err := netlink.LinkByName(name)
			if err != nil {
				return err
			}
			if name != "eth0" {
				if err := netlink.LinkSetName(l, "eth0"); err != nil {
					return err
				}
			}
			addr := &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(24, 32)}}
			if err := netlink.AddrAdd(l, addr); err != nil {
				return err
			}
			return netlink.LinkSetUp(l)
		})

		if err != nil {
			t.Fatalf("netns %s: %v", ns, err)
		}
	}
	up(a, "eth0", ipA)
	up(b, "peer", ipB)
	return a, b, ipA, ipB
}

// TestTrafficBetweenNamespaces: ping, a TCP transfer checked by SHA-256, a
// TCP and a UDP exchange over sockets made by Listen, ListenPacket and
// Dial, and raw frames from a FrameWriter, all between two namespaces.
func TestTrafficBetweenNamespaces(t *testing.T) {
	a, b, ipA, ipB := pair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	r, err := podnet.Ping(ctx, a, ipB, podnet.PingOptions{Count: 3, Interval: 10 * time.Millisecond})
	if err != nil || r.Received() != 3 {
		t.Fatalf("ping %s from %s: %v %v", ipB, a, r, err)
	}
	tr, err := podnet.Transfer(ctx, b, a, ipA, 4<<20)
	if err != nil || !tr.Match() || tr.Bytes != 4<<20 {
		t.Fatalf("transfer %s -> %s: %v %v", b, ipA, tr, err)
	}

	// TCP: the listener in b sees a connection from a's address.
	l, err := podnet.Listen(ctx, b, "tcp4", net.JoinHostPort(ipB.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		msg, _ := io.ReadAll(c)
		got <- c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().String() + " " + string(msg)
	}()
	c, err := podnet.Dial(ctx, a, "tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("hello"))
	c.Close()
	if s := <-got; s != ipA.String()+" hello" {
		t.Errorf("tcp: the listener got %q, want %q", s, ipA.String()+" hello")
	}

	// UDP: a datagram from a arrives at b's socket.
	pc, err := podnet.ListenPacket(ctx, b, "udp4", net.JoinHostPort(ipB.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	uc, err := podnet.Dial(ctx, a, "udp4", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	uc.Write([]byte("ping"))
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16)
	n, from, err := pc.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "ping" || from.(*net.UDPAddr).AddrPort().Addr() != ipA {
		t.Errorf("udp: got %q from %v (%v), want \"ping\" from %s", buf[:n], from, err, ipA)
	}

	// Dialling out of a namespace that does not exist names it.
	if _, err := podnet.Dial(ctx, a+"x", "tcp4", l.Addr().String()); err == nil {
		t.Error("dial from a namespace that does not exist: no error")
	}
}

// TestFrameWriter writes raw frames out of a's eth0, with and without the
// qdisc, and b's eth0 receives each one.
func TestFrameWriter(t *testing.T) {
	a, b, _, _ := pair(t)
	rx := func() uint64 {
		var n uint64
		err := netns.FromPath(netns.PathOf(b)).Run(func() error {
			l, err := netlink.LinkByName("eth0")
			if err != nil {
				return err
			}
			n = l.Attrs().Statistics.RxPackets
			return nil
		})

		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// A broadcast of the local experimental EtherType, padded to 60 bytes.
	frame := make([]byte, 60)
	copy(frame, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x88, 0xb5})
	for _, o := range []podnet.FrameOptions{{}, {BypassQdisc: true, Retry: true}} {
		w, err := podnet.OpenFrameWriter(a, "eth0", o)
		if err != nil {
			t.Fatal(err)
		}
		before := rx()
		for range 5 {
			if err := w.Write(frame); err != nil {
				t.Fatalf("%+v: %v", o, err)
			}
		}
		w.Close()
		if !testenv.Eventually(2*time.Second, func() bool { return rx()-before >= 5 }) {
			t.Errorf("%+v: b received %d of 5 frames", o, rx()-before)
		}
	}
	if _, err := podnet.OpenFrameWriter(a, "nosuch0", podnet.FrameOptions{}); err == nil {
		t.Error("a frame writer on an interface that does not exist: no error")
	}
}
