package cri

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/tapswitch/tapswitch/tap"
)

// What the test needs of the host, here rather than in cmd/internal (which
// Go keeps to cmd/): root, a free pod subnet, a gateway name of its own,
// pings from inside a namespace, and the daemon's JSON listings.

func requireRoot(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping the real-runtime test (containerd, namespaces, TAPs)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs containerd and the tapswitch daemon (run `sudo go test`)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("needs /dev/net/tun: %v", err)
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
	id := fmt.Sprintf("e%05x", rand.Uint32()&0xfffff)
	iso := isolation{Prefix: id, GwIf: id + "gw"}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: 0}, netlink.RT_FILTER_TABLE)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		t.Fatal(err)
	}
	for try := 0; try < 64 && !iso.Subnet.IsValid(); try++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 249, byte(rand.IntN(256)), 0}), 24)
		free := true
		for _, rt := range routes {
			if rt.Dst == nil {
				continue
			}
			a, ok := netip.AddrFromSlice(rt.Dst.IP.To4())
			ones, _ := rt.Dst.Mask.Size()
			if ok && ones > 0 && netip.PrefixFrom(a, ones).Masked().Overlaps(p) {
				free = false
			}
		}
		if free {
			iso.Subnet = p
		}
	}
	if !iso.Subnet.IsValid() {
		t.Fatal("no free 10.249.X.0/24 for the test")
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
	network, laddr, proto := "ip4:icmp", "0.0.0.0", 1
	var echo, reply icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if dst.Is6() && !dst.Is4In6() {
		// The kernel fills in the ICMPv6 checksum of a raw socket's
		// messages (it knows the pseudo-header; Marshal without one
		// leaves it zero).
		network, laddr, proto = "ip6:ipv6-icmp", "::", 58
		echo, reply = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	var conn *icmp.PacketConn
	if err := tap.InNamespace(path, func() (err error) {
		conn, err = icmp.ListenPacket(network, laddr)
		return err
	}); err != nil {
		return 0, err
	}
	defer conn.Close()
	id := rand.IntN(0xffff) + 1
	peer := &net.IPAddr{IP: dst.AsSlice()}
	got := map[int]bool{}
	buf := make([]byte, 1500)
	for seq := 1; seq <= count; seq++ {
		b, _ := (&icmp.Message{Type: echo, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("tapswitch e2e")}}).Marshal(nil)
		if _, err := conn.WriteTo(b, peer); err != nil {
			return len(got), err
		}
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		for !got[seq] {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				break // this one is lost
			}
			if a, ok := from.(*net.IPAddr); !ok || !a.IP.Equal(peer.IP) {
				continue
			}
			m, err := icmp.ParseMessage(proto, buf[:n])
			if err != nil || m.Type != reply {
				continue
			}
			if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id {
				got[e.Seq] = true
			}
		}
	}
	return len(got), nil
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
