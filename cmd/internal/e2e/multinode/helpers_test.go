package multinode

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/internal/podnet"
	"github.com/tapswitch/tapswitch/netns"
)

// in runs fn on a thread inside the named namespace.
func in(ns string, fn func() error) error { return netns.FromPath(netns.PathOf(ns)).Run(fn) }

// kubeProxyDNAT imitates kube-proxy in the node namespace ns: a table of its
// own (ip kubeproxy) whose prerouting nat chain rewrites TCP to svc into
// backend, as KUBE-SERVICES -> KUBE-SEP -> DNAT does.
func kubeProxyDNAT(ns string, svc, backend netip.AddrPort) error {
	return in(ns, func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "kubeproxy"})
		ch := c.AddChain(&nftables.Chain{
			Name: "prerouting", Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest,
		})
		vip, bip := svc.Addr().As4(), backend.Addr().As4()
		port := func(p uint16) []byte { return binary.BigEndian.AppendUint16(nil, p) }
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: vip[:]},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port(svc.Port())},
			&expr.Immediate{Register: 1, Data: bip[:]},
			&expr.Immediate{Register: 2, Data: port(backend.Port())},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
		}})
		if err := c.Flush(); err != nil {
			return fmt.Errorf("netns %s: kube-proxy DNAT %s -> %s: %w", ns, svc, backend, err)
		}
		return nil
	})
}

// exchange is one TCP connection from namespace from to dial, accepted by a
// listener on listen inside namespace to: the client sends a request, the
// server answers with a longer reply, both checked. It returns the client
// address the server saw.
func exchange(ctx context.Context, from, to string, listen, dial netip.AddrPort) (netip.AddrPort, error) {
	ln, err := podnet.Listen(ctx, to, "tcp4", listen.String())
	if err != nil {
		return netip.AddrPort{}, err
	}
	defer ln.Close()
	req := []byte("request from the client, 32 byte")
	reply := make([]byte, 200_000) // several segments back
	for i := range reply {
		reply[i] = byte(i * 7)
	}
	type seen struct {
		peer netip.AddrPort
		err  error
	}
	sc := make(chan seen, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			sc <- seen{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		peer := c.RemoteAddr().(*net.TCPAddr).AddrPort()
		got := make([]byte, len(req))
		if _, err := io.ReadFull(c, got); err != nil {
			sc <- seen{peer, fmt.Errorf("server: read request: %w", err)}
			return
		}
		if string(got) != string(req) {
			sc <- seen{peer, fmt.Errorf("server: request %q, want %q", got, req)}
			return
		}
		_, err = c.Write(reply)
		sc <- seen{peer, err}
	}()
	conn, err := podnet.Dial(ctx, from, "tcp4", dial.String())
	if err != nil {
		return netip.AddrPort{}, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(req); err != nil {
		return netip.AddrPort{}, fmt.Errorf("client: send: %w", err)
	}
	got := make([]byte, len(reply))
	if _, err := io.ReadFull(conn, got); err != nil {
		return netip.AddrPort{}, fmt.Errorf("client: read reply: %w", err)
	}
	if string(got) != string(reply) {
		return netip.AddrPort{}, errors.New("client: reply differs from what the server sent")
	}
	s := <-sc
	return s.peer, s.err
}

// udpTTL sends one datagram from namespace from to dst, received inside
// namespace to, and returns its source and the TTL it arrived with.
func udpTTL(from, to string, dst netip.AddrPort) (netip.Addr, int, error) {
	pc, err := podnet.ListenPacket(context.Background(), to, "udp4", dst.String())
	if err != nil {
		return netip.Addr{}, 0, err
	}
	defer pc.Close()
	p := ipv4.NewPacketConn(pc)
	if err := p.SetControlMessage(ipv4.FlagTTL, true); err != nil {
		return netip.Addr{}, 0, err
	}
	c, err := podnet.Dial(context.Background(), from, "udp4", dst.String())
	if err != nil {
		return netip.Addr{}, 0, err
	}
	defer c.Close()
	if _, err := c.Write([]byte("ttl probe")); err != nil {
		return netip.Addr{}, 0, err
	}
	p.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 64)
	_, cm, src, err := p.ReadFrom(buf)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("receive in %s: %w", to, err)
	}
	return src.(*net.UDPAddr).AddrPort().Addr().Unmap(), cm.TTL, nil
}

// underlay joins namespaces a and b with a veth pair made inside a (never
// in the host's namespace): ifA with addrA in a, ifB with addrB in b.
func underlay(t *testing.T, a, ifA string, addrA netip.Prefix, b, ifB string, addrB netip.Prefix) {
	t.Helper()
	hb, err := vnetns.GetFromPath(netns.PathOf(b))
	if err != nil {
		t.Fatal(err)
	}
	defer hb.Close()
	err = in(a, func() error {
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: ifA}, PeerName: ifB, PeerNamespace: netlink.NsFd(hb)}
		if err := netlink.LinkAdd(v); err != nil {
			return fmt.Errorf("veth %s/%s: %w", ifA, ifB, err)
		}
		return linkUp(ifA, addrA)
	})
	if err == nil {
		err = in(b, func() error { return linkUp(ifB, addrB) })
	}
	if err != nil {
		t.Fatal(err)
	}
}

func linkUp(name string, addr netip.Prefix) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	a, _ := netlink.ParseAddr(addr.String())
	if err := netlink.AddrAdd(l, a); err != nil {
		return fmt.Errorf("%s: address %s: %w", name, addr, err)
	}
	return netlink.LinkSetUp(l)
}

// route adds dst via gw inside namespace ns.
func route(ns string, dst netip.Prefix, gw netip.Addr) error {
	return in(ns, func() error {
		_, n, _ := net.ParseCIDR(dst.String())
		if err := netlink.RouteAdd(&netlink.Route{Dst: n, Gw: gw.AsSlice()}); err != nil {
			return fmt.Errorf("netns %s: route %s via %s: %w", ns, dst, gw, err)
		}
		return nil
	})
}
