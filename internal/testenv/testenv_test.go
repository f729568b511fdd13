package testenv

import (
	"net"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/tapswitch/tapswitch/netns"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if why := RootSkip(testing.Short()); why != "" {
		t.Skip(why + ": makes network namespaces and links")
	}
}

func TestNewPrefix(t *testing.T) {
	p := NewPrefix("tb", 4)
	if len(p) != 6 || !strings.HasPrefix(p, "tb") || strings.Trim(p[2:], "0123456789abcdef") != "" {
		t.Fatalf("NewPrefix(tb, 4) = %q, want tb and 4 hex digits", p)
	}
	// Two draws of 20 bits agree once in a million: three in a row never.
	a, b, c := NewPrefix("t", 5), NewPrefix("t", 5), NewPrefix("t", 5)
	if a == b && b == c {
		t.Fatalf("three prefixes alike: %q", a)
	}
}

// TestFreeSubnet: the /24 is under 10.<second> and overlaps no address and
// no route of the host.
func TestFreeSubnet(t *testing.T) {
	p, err := FreeSubnet(248)
	if err != nil {
		t.Fatal(err)
	}
	if p.Bits() != 24 || p.Addr().As4()[0] != 10 || p.Addr().As4()[1] != 248 || p.Masked() != p {
		t.Fatalf("FreeSubnet(248) = %s, want 10.248.X.0/24", p)
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if q, ok := prefixOf(a.IPNet); ok && q.Overlaps(p) {
			t.Errorf("%s overlaps the host's address %s", p, a.IPNet)
		}
	}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if q, ok := prefixOf(r.Dst); ok && q.Bits() > 0 && q.Overlaps(p) {
			t.Errorf("%s overlaps the host's route to %s (table %d)", p, r.Dst, r.Table)
		}
	}
}

func TestSweepTooShortPrefix(t *testing.T) {
	if err := Sweep("tb"); err == nil || !strings.Contains(err.Error(), `"tb"`) {
		t.Fatalf("Sweep(tb) = %v, want a refusal naming the prefix", err)
	}
}

// TestQuietNamespaceAndSweep makes a quiet namespace and a veth pair from
// the host into it under one prefix, and a namespace under another: Sweep
// removes the first prefix's namespace and link, and leaves the other's.
func TestQuietNamespaceAndSweep(t *testing.T) {
	requireRoot(t)
	p, other := NewPrefix("tv", 5), NewPrefix("tw", 5)
	t.Cleanup(func() { Sweep(p, other) })
	ns := p + "node"
	if err := QuietNamespace(ns); err != nil {
		t.Fatal(err)
	}
	if err := QuietNamespace(other + "node"); err != nil {
		t.Fatal(err)
	}
	err := netns.FromPath(netns.PathOf(ns)).Run(func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if lo.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("netns %s: lo is down", ns)
		}
		b, err := os.ReadFile("/proc/sys/net/ipv6/conf/default/disable_ipv6")
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(b)) != "1" {
			t.Errorf("netns %s: ipv6 default disable_ipv6 = %q, want 1", ns, b)
		}
		return nil
	})

	if err != nil {
		t.Fatal(err)
	}
	h := p + "h"
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: h}, PeerName: p + "p"}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	want := []string{"link " + h, "link " + p + "p", "netns " + ns}
	left := Left(p)
	slices.Sort(left)
	if !slices.Equal(left, want) {
		t.Fatalf("Left(%s) = %v, want %v", p, left, want)
	}
	if err := Sweep(p); err != nil {
		t.Fatal(err)
	}
	if left := Left(p); len(left) != 0 {
		t.Errorf("after Sweep(%s): %v left", p, left)
	}
	if got := Namespaces(other); !slices.Equal(got, []string{other + "node"}) {
		t.Errorf("Sweep(%s) touched %s: namespaces now %v", p, other, got)
	}
	if err := Sweep(other); err != nil {
		t.Fatal(err)
	}
	if left := Left(other); len(left) != 0 {
		t.Errorf("after Sweep(%s): %v left", other, left)
	}
}
