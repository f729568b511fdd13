// Package testenv gives a root test, the bench and the real-node simulator
// their own corner of the machine: a unique prefix for namespace and link
// names, a pod subnet nothing on the host overlaps, a quiet namespace to
// play a node's host namespace, and a sweep that removes every namespace
// and link carrying a prefix, so that a run that failed half-way leaves
// nothing behind. It touches nothing that does not carry the prefix.
//
// It does not import package testing: the bench and the simulator link it
// into the tapswitch command. Traffic inside the namespaces is package
// podnet's.
package testenv

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/internal/podnet"
	"github.com/tapswitch/tapswitch/netns"
	"github.com/tapswitch/tapswitch/tap"
)

// RootSkip says why a root test cannot run here, or "" when it can: short
// (testing.Short(): `make test-short` leaves out root-only tests), not
// root, or no /dev/net/tun.
func RootSkip(short bool) string {
	if short {
		return "-short: skipping a root test"
	}
	if os.Geteuid() != 0 {
		return "needs root (run `sudo go test`)"
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return fmt.Sprintf("needs /dev/net/tun: %v", err)
	}
	return ""
}

// NewPrefix returns a fresh name prefix for a run: lead and digits random
// hex digits, e.g. NewPrefix("tb", 4) = "tb3f2a". Keep it short enough to
// leave room in a 15-byte interface name.
func NewPrefix(lead string, digits int) string {
	var b [8]byte
	rand.Read(b[:])
	return lead + fmt.Sprintf("%016x", b)[:digits]
}

// FreeSubnet returns 10.<second>.X.0/24 for an X whose /24 no address or
// route on the host (in any routing table) overlaps.
func FreeSubnet(second byte) (netip.Prefix, error) {
	var taken []netip.Prefix
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return netip.Prefix{}, fmt.Errorf("free subnet: %w", err)
	}
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok {
			taken = append(taken, p)
		}
	}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return netip.Prefix{}, fmt.Errorf("free subnet: %w", err)
	}
	for _, r := range routes {
		if p, ok := prefixOf(r.Dst); ok && p.Bits() > 0 {
			taken = append(taken, p)
		}
	}
	var b [1]byte
	rand.Read(b[:])
	for i := range 254 {
		x := byte((int(b[0])+i)%254 + 1)
		cand := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, second, x, 0}), 24)
		if !overlapsAny(cand, taken) {
			return cand, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("free subnet: every 10.%d.X.0/24 is in use on this host", second)
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones).Masked(), true
}

func overlapsAny(p netip.Prefix, ps []netip.Prefix) bool {
	for _, q := range ps {
		if p.Overlaps(q) {
			return true
		}
	}
	return false
}

// QuietNamespace makes named network namespace name to play a node's host
// namespace: IPv6 off (so that it sends no neighbour discovery of its own)
// and lo up.
func QuietNamespace(name string) error {
	ns, err := netns.Named(name)
	if err != nil {
		return err
	}
	if _, err := ns.Create(); err != nil {
		return err
	}
	if err := podnet.DisableIPv6(name); err != nil {
		return err
	}
	return ns.Run(func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("netns %s: %w", name, err)
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return fmt.Errorf("netns %s: lo up: %w", name, err)
		}
		return nil
	})
}

// Sweep removes the links in the host namespace and the named network
// namespaces whose names start with one of prefixes; a namespace's eth0,
// when it is a TAP, is deleted first, so that it is gone when Sweep
// returns (the kernel dismantles a namespace in the background).
func Sweep(prefixes ...string) error {
	for _, p := range prefixes {
		if len(p) < 4 {
			return fmt.Errorf("sweep: prefix %q too short to be a run's", p)
		}
	}
	var errs []error
	links, err := netlink.LinkList()
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		errs = append(errs, fmt.Errorf("sweep %s: %w", strings.Join(prefixes, ","), err))
	}
	for _, l := range links {
		if hasPrefix(l.Attrs().Name, prefixes) {
			if err := netlink.LinkDel(l); err != nil && !IsNotFound(err) {
				errs = append(errs, fmt.Errorf("sweep: link %q: %w", l.Attrs().Name, err))
			}
		}
	}
	for _, ns := range Namespaces(prefixes...) {
		if tap.DeletePod(tap.PodConfig{Name: ns, NetNS: ns}, true) != nil {
			// Not a TAP as eth0 (a veth, or nothing): the namespace takes
			// its links with it.
			if err := netns.DeleteNamed(ns); err != nil {
				errs = append(errs, fmt.Errorf("sweep: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

// Left lists what Sweep(prefixes...) would remove: "netns NAME" and "link
// NAME" for each namespace and host link that carries one of prefixes.
func Left(prefixes ...string) []string {
	var left []string
	for _, ns := range Namespaces(prefixes...) {
		left = append(left, "netns "+ns)
	}
	links, _ := netlink.LinkList()
	for _, l := range links {
		if hasPrefix(l.Attrs().Name, prefixes) {
			left = append(left, "link "+l.Attrs().Name)
		}
	}
	return left
}

// Namespaces lists the named network namespaces whose names start with one
// of prefixes.
func Namespaces(prefixes ...string) []string {
	var out []string
	ents, _ := os.ReadDir(netns.Dir)
	for _, e := range ents {
		if hasPrefix(e.Name(), prefixes) {
			out = append(out, e.Name())
		}
	}
	return out
}

func hasPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// IsNotFound says err means the link or file was already gone.
func IsNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENODEV)
}

// Eventually polls cond every 10 ms for up to d and says whether it held.
func Eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// HeapKiB is the heap in use after a garbage collection, in KiB.
func HeapKiB() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse >> 10
}
