package hostile

import (
	"context"
	"encoding/binary"
	"net/netip"
	"os"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/tapswitch/tapswitch/arp"
	"github.com/tapswitch/tapswitch/bench"
	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/cmd/internal/daemon"
	"github.com/tapswitch/tapswitch/cmd/internal/nodetest"
	"github.com/tapswitch/tapswitch/fdb"
	"github.com/tapswitch/tapswitch/internal/podnet"
	"github.com/tapswitch/tapswitch/netns"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

var bg = context.Background()

var bcast = fdb.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// ether builds an Ethernet frame.
func ether(dst, src fdb.MAC, etype uint16, payload []byte) []byte {
	f := make([]byte, 14+len(payload))
	copy(f, dst[:])
	copy(f[6:], src[:])
	binary.BigEndian.PutUint16(f[12:], etype)
	copy(f[14:], payload)
	return f
}

// udp4 is an IPv4/UDP packet from src to dst port 9 (discard) with n bytes
// of payload and no UDP checksum (allowed in IPv4).
func udp4(src, dst netip.Addr, n int) []byte {
	p := make([]byte, 28+n)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	p[8] = 64
	p[9] = 17
	s, d := src.As4(), dst.As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(p[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(p[10:], ^uint16(sum))
	binary.BigEndian.PutUint16(p[20:], 9999)
	binary.BigEndian.PutUint16(p[22:], 9)
	binary.BigEndian.PutUint16(p[24:], uint16(8+n))
	return p
}

// arpBody is an Ethernet/IPv4 ARP body, as the switch's own ARP replies
// are built.
func arpBody(op uint16, sha fdb.MAC, spa netip.Addr, tha fdb.MAC, tpa netip.Addr) []byte {
	b := make([]byte, arp.BodyLen)
	if err := arp.Build(b, op, sha, spa, tha, tpa); err != nil {
		panic(err) // b is BodyLen long: Build cannot fail
	}
	return b
}

// ports maps the switch's ports by name, counters read live.
func ports(sw *vswitch.Switch) map[string]vswitch.PortInfo {
	m := make(map[string]vswitch.PortInfo)
	for _, p := range sw.Ports() {
		m[p.Name] = p
	}
	return m
}

// writer opens a packet socket on pod's eth0, closed by the cleanup.
func writer(t testing.TB, e *nodetest.Env, pod string, vnet bool) *podnet.FrameWriter {
	t.Helper()
	w, err := podnet.OpenFrameWriter(netns.PathOf(e.Netns(pod)), "eth0", podnet.FrameOptions{VnetHdr: vnet, BypassQdisc: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// linkStats reads eth0's kernel counters inside pod's namespace.
func linkStats(t testing.TB, e *nodetest.Env, pod string) netlink.LinkStatistics {
	t.Helper()
	var st netlink.LinkStatistics
	err := netns.FromPath(netns.PathOf(e.Netns(pod))).Run(func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if s := l.Attrs().Statistics; s != nil {
			st = *s
		}
		return nil
	})

	if err != nil {
		t.Fatal(err)
	}
	return st
}

// setMTU sets eth0's MTU inside pod's namespace, as a pod with
// CAP_NET_ADMIN may.
func setMTU(t testing.TB, e *nodetest.Env, pod string, mtu int) {
	t.Helper()
	err := netns.FromPath(netns.PathOf(e.Netns(pod))).Run(func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		return netlink.LinkSetMTU(l, mtu)
	})

	if err != nil {
		t.Fatal(err)
	}
}

// neighbour is pod's ARP cache entry for ip (eth0), if any.
func neighbour(t testing.TB, e *nodetest.Env, pod string, ip netip.Addr) (fdb.MAC, int, bool) {
	t.Helper()
	var mac fdb.MAC
	var state int
	found := false
	err := netns.FromPath(netns.PathOf(e.Netns(pod))).Run(func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		ns, err := netlink.NeighList(l.Attrs().Index, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, n := range ns {
			if a, ok := netip.AddrFromSlice(n.IP.To4()); ok && a == ip && len(n.HardwareAddr) == 6 {
				mac, state, found = fdb.MACFrom(n.HardwareAddr), n.State, true
			}
		}
		return nil
	})

	if err != nil {
		t.Fatal(err)
	}
	return mac, state, found
}

// rss is this process's resident set (which hosts the daemon), in KiB.
func rss(t testing.TB) int {
	t.Helper()
	r, err := bench.ReadRSS(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return int(r.Now)
}

// keepsEntries checks that each pod's MAC is still in the FDB on its own
// port after a flood.
func keepsEntries(t testing.TB, d *daemon.Daemon, pods ...api.Pod) {
	t.Helper()
	for _, p := range pods {
		m := nodetest.MAC(t, p)
		id, _ := d.Switch().PortByName(p.Name)
		if got, ok := d.Switch().FDB().Lookup(1, m[:], d.Switch().Now()); !ok || got != id {
			t.Errorf("pod %s's entry (%v on port %d) lost to the flood: lookup gives %d %v", p.Name, m, id, got, ok)
		}
	}
}
