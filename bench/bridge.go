package bench

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"

	"github.com/tapswitch/tapswitch/internal/testenv"
	"github.com/tapswitch/tapswitch/netns"
)

// Bridge is the cbr0 baseline: a Linux bridge in the host namespace holding
// the gateway address, and per pod a namespace whose eth0 is one end of a
// veth pair enslaved to the bridge.
type Bridge struct {
	prefix string
	name   string
	pods   []Pod
	closed bool
}

// BuildBridge makes n pods behind a new bridge named prefix+"br", in subnet
// sub (the gateway is .1, pods .10 on). Names: netns prefix+"b"+i, host
// veth ends prefix+"v"+i. On failure it removes what it made.
func BuildBridge(prefix string, sub netip.Prefix, n int) (_ *Bridge, err error) {
	b := &Bridge{prefix: prefix, name: prefix + "br"}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("bridge topology: %w", err), b.Close())
		}
	}()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: b.name, MTU: 1500}}
	if err := netlink.LinkAdd(br); err != nil {
		return nil, fmt.Errorf("bridge %q: %w", b.name, err)
	}
	link, err := netlink.LinkByName(b.name)
	if err != nil {
		return nil, fmt.Errorf("bridge %q: %w", b.name, err)
	}
	gw := netip.PrefixFrom(hostAddr(sub, 1), sub.Bits())
	if err := netlink.AddrAdd(link, mustAddr(gw)); err != nil {
		return nil, fmt.Errorf("bridge %q: address %s: %w", b.name, gw, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("bridge %q: up: %w", b.name, err)
	}
	for i := range n {
		p, err := b.addPod(link.Attrs().Index, i, netip.PrefixFrom(podAddr(sub, i), sub.Bits()), gw.Addr())
		if err != nil {
			return nil, err
		}
		b.pods = append(b.pods, p)
	}
	return b, nil
}

func (b *Bridge) addPod(brIndex, i int, addr netip.Prefix, gw netip.Addr) (Pod, error) {
	ns := b.prefix + "b" + strconv.Itoa(i)
	host := b.prefix + "v" + strconv.Itoa(i)
	peer := b.prefix + "e" + strconv.Itoa(i)
	if _, err := netns.CreateNamed(ns); err != nil {
		return Pod{}, err
	}
	path := netns.PathOf(ns)
	h, err := vnetns.GetFromPath(path)
	if err != nil {
		return Pod{}, fmt.Errorf("netns %q: %w", ns, err)
	}
	defer h.Close()
	a4 := addr.Addr().As4()
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: host, MTU: 1500, MasterIndex: brIndex},
		PeerName:         peer,
		PeerNamespace:    netlink.NsFd(int(h)),
		PeerHardwareAddr: net.HardwareAddr{0x02, 0x01, a4[0], a4[1], a4[2], a4[3]},
		PeerMTU:          1500,
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return Pod{}, fmt.Errorf("veth %q: %w", host, err)
	}
	hl, err := netlink.LinkByName(host)
	if err == nil {
		err = netlink.LinkSetUp(hl)
	}
	if err != nil {
		return Pod{}, fmt.Errorf("veth %q: up: %w", host, err)
	}
	err = netns.FromPath(path).Run(func() error { return podEth0(peer, "veth", addr, gw) })
	if err != nil {
		return Pod{}, fmt.Errorf("pod %s: %w", ns, err)
	}
	return Pod{Name: ns, NetNS: path, IP: addr.Addr()}, nil
}

// podEth0 makes link, already in the pod's namespace (the caller's), the
// pod's eth0 with addr, up, with lo up, and a default route via gw when gw
// is valid. kind names the link in errors.
func podEth0(link, kind string, addr netip.Prefix, gw netip.Addr) error {
	l, err := netlink.LinkByName(link)
	if err != nil {
		return fmt.Errorf("%s %q: %w", kind, link, err)
	}
	if err := netlink.LinkSetName(l, "eth0"); err != nil {
		return fmt.Errorf("%s %q: rename: %w", kind, link, err)
	}
	if err := netlink.AddrAdd(l, mustAddr(addr)); err != nil {
		return fmt.Errorf("eth0: address %s: %w", addr, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("eth0: up: %w", err)
	}
	if lo, err := netlink.LinkByName("lo"); err == nil {
		netlink.LinkSetUp(lo)
	}
	if gw.IsValid() {
		if err := netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: gw.AsSlice()}); err != nil {
			return fmt.Errorf("eth0: default route via %s: %w", gw, err)
		}
	}
	return nil
}

func mustAddr(p netip.Prefix) *netlink.Addr {
	a, err := netlink.ParseAddr(p.String())
	if err != nil {
		panic(err) // p is a valid prefix
	}
	return a
}

// System implements Topology.
func (b *Bridge) System() string { return "bridge" }

// Pods implements Topology.
func (b *Bridge) Pods() []Pod { return b.pods }

// SwitchPID implements Topology: the kernel forwards, in softirq context.
func (b *Bridge) SwitchPID() int { return 0 }

// Close deletes the bridge, the veth pairs and the namespaces.
func (b *Bridge) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	var errs []error
	if l, err := netlink.LinkByName(b.name); err == nil {
		if err := netlink.LinkDel(l); err != nil && !testenv.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("bridge %q: delete: %w", b.name, err))
		}
	}
	// The namespaces take the veth pairs with them; Sweep catches the rest.
	errs = append(errs, testenv.Sweep(b.prefix+"b", b.prefix+"v", b.prefix+"e"))
	return errors.Join(errs...)
}
