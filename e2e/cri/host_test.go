package cri

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/tapswitch/tapswitch/internal/podnet"
	"github.com/tapswitch/tapswitch/internal/testenv"
)

// What the test needs of the host: root, a free pod subnet and pings from
// inside a namespace (packages testenv and podnet), a gateway name of its
// own, and the daemon's JSON listings.

func requireRoot(t *testing.T) {
	t.Helper()
	if why := testenv.RootSkip(testing.Short()); why != "" {
		t.Skip(why + ": runs containerd and the tapswitch daemon")
	}
}

// isolation is the test's corner of the host: a unique prefix ("e1a2b3"),
// the gateway TAP's name, and a 10.249.X.0/24 no host route overlaps; for
// a dual-stack node (useIPv6) also a unique local /64 no host route
// overlaps.
type isolation struct {
	Prefix  string
	GwIf    string
	Subnet  netip.Prefix
	GwAddr  netip.Addr
	Subnet6 netip.Prefix // invalid unless useIPv6
	GwAddr6 netip.Addr
}

// useIPv6 gives the node fd74:7377:X:XXXX::/64, X:XXXX the random part of
// the prefix (so a run's subnet is its own, as its name is), with ::1 for
// the gateway.
func (iso *isolation) useIPv6(t *testing.T) {
	var id uint32
	if _, err := fmt.Sscanf(iso.Prefix, "e%x", &id); err != nil {
		t.Fatal(err)
	}
	p := netip.MustParsePrefix(fmt.Sprintf("fd74:7377:%x:%x::/64", id>>16, id&0xffff))
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V6, &netlink.Route{Table: 0}, netlink.RT_FILTER_TABLE)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		t.Fatal(err)
	}
	for _, rt := range routes {
		if rt.Dst == nil {
			continue
		}
		a, ok := netip.AddrFromSlice(rt.Dst.IP)
		ones, _ := rt.Dst.Mask.Size()
		if ok && a.Is6() && !a.Is4In6() && ones > 0 && netip.PrefixFrom(a, ones).Masked().Overlaps(p) {
			t.Fatalf("IPv6 subnet %s for the test overlaps the host's route to %s", p, rt.Dst)
		}
	}
	iso.Subnet6, iso.GwAddr6 = p, p.Addr().Next()
}

func isolate(t *testing.T) isolation {
	id := testenv.NewPrefix("e", 5)
	iso := isolation{Prefix: id, GwIf: id + "gw"}
	var err error
	if iso.Subnet, err = testenv.FreeSubnet(249); err != nil {
		t.Fatal(err)
	}
	iso.GwAddr = iso.Subnet.Addr().Next()
	t.Cleanup(func() {
		// The daemon keeps its gateway when it stops (pods outlive it).
		if l, err := netlink.LinkByName(iso.GwIf); err == nil {
			if err := netlink.LinkDel(l); err != nil {
				t.Errorf("gateway %s: %v", iso.GwIf, err)
			}
		}
	})
	return iso
}

// pingFrom sends count echo requests (ICMP or ICMPv6, by dst's family)
// from inside the namespace at path to dst and returns how many were
// answered.
func pingFrom(path string, dst netip.Addr, count int) (int, error) {
	r, err := podnet.Ping(context.Background(), path, dst, podnet.PingOptions{Count: count, Timeout: 2 * time.Second})
	return r.Received(), err
}

// pod and port are the parts of `tapswitch pod list -o json` and
// `tapswitch ports -o json` the test reads.
type pod struct {
	Name        string   `json:"name"`
	State       string   `json:"state"`
	Netns       string   `json:"netns"`
	IfName      string   `json:"ifname"`
	IP          string   `json:"ip"`
	IPs         []string `json:"ips"` // CIDRs, IPv4 first
	Port        int      `json:"port"`
	ContainerID string   `json:"container_id"`
	Network     string   `json:"network"`
}

type port struct {
	ID    int    `json:"id"`
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	State string `json:"state"`
}

// neighbour is a row of `tapswitch arp -o json`: an address the switch
// snooped (ARP or NDP) and the port it was heard on.
type neighbour struct {
	IP       netip.Addr `json:"ip"`
	MAC      string     `json:"mac"`
	Port     int        `json:"port"`
	PortName string     `json:"port_name"`
}
