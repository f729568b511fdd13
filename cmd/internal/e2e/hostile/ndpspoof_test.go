package hostile

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/tapswitch/tapswitch/arp"
	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/cmd/internal/nodetest"
	"github.com/tapswitch/tapswitch/fdb"
	"github.com/tapswitch/tapswitch/internal/podnet"
	"github.com/tapswitch/tapswitch/internal/testenv"
	"github.com/tapswitch/tapswitch/netns"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

// ping6 sends up to count ICMPv6 echo requests from pod to dst and reports
// whether one was answered.
func ping6(t testing.TB, e *nodetest.Env, pod string, dst netip.Addr, count int) bool {
	t.Helper()
	for range count {
		r, err := podnet.Ping(bg, e.Netns(pod), dst, podnet.PingOptions{Count: 1, Timeout: time.Second})
		if err != nil && r.Sent == 0 {
			t.Fatalf("ping6 from %s: %v", pod, err)
		}
		if err != nil {
			t.Logf("ping6 %s -> %s: %v", pod, dst, err)
		}
		if r.Received() > 0 {
			return true
		}
	}
	return false
}

// neighbour6 is pod's neighbour cache entry for ip on eth0, if any.
func neighbour6(t testing.TB, e *nodetest.Env, pod string, ip netip.Addr) (fdb.MAC, bool) {
	t.Helper()
	var mac fdb.MAC
	found := false
	err := netns.FromPath(netns.PathOf(e.Netns(pod))).Run(func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		ns, err := netlink.NeighList(l.Attrs().Index, netlink.FAMILY_V6)
		if err != nil {
			return err
		}
		for _, n := range ns {
			if a, ok := netip.AddrFromSlice(n.IP); ok && a == ip && len(n.HardwareAddr) == 6 {
				mac, found = fdb.MACFrom(n.HardwareAddr), true
			}
		}
		return nil
	})

	if err != nil {
		t.Fatal(err)
	}
	return mac, found
}

// icmp6In reads counter (Icmp6InRouterAdvertisements, ...) of pod's
// namespace from /proc/thread-self/net/snmp6, which shows the namespace of
// the thread reading it.
func icmp6In(t testing.TB, e *nodetest.Env, pod, counter string) uint64 {
	t.Helper()
	var v uint64
	err := netns.FromPath(netns.PathOf(e.Netns(pod))).Run(func() error {
		f, err := os.Open("/proc/thread-self/net/snmp6")
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, val, ok := strings.Cut(sc.Text(), " "); ok && k == counter {
				v, err = strconv.ParseUint(strings.TrimSpace(val), 10, 64)
				return err
			}
		}
		return errors.Join(sc.Err(), fmt.Errorf("no %s in snmp6", counter))
	})

	if err != nil {
		t.Fatal(err)
	}
	return v
}

var allNodesMAC = fdb.MAC{0x33, 0x33, 0, 0, 0, 1}

func ndpFrame(t testing.TB, dst, src fdb.MAC, m arp.NDP) []byte {
	t.Helper()
	p, err := arp.BuildNDP(nil, m, arp.NDPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ether(dst, src, 0x86dd, p)
}

// TestNDPSpoofing: three dual-stack pods on the real dataplane. Pods ping
// each other over IPv6 and the switch's neighbour table learns them, both
// families. Pod "evil" then sends neighbour advertisements from a packet
// socket claiming pod b's IPv6 address with its own MAC (to every node,
// and to c directly). With the guard on (the default) every one is dropped
// and counted as ndp-guard, c's neighbour cache keeps b's MAC and c still
// reaches b; with it off, c's cache takes evil's MAC, which shows the
// forgery is one the kernel would take. A router advertisement from evil
// does not reach c unless arp.pod_router_advertisements allows it.
func TestNDPSpoofing(t *testing.T) {
	for _, guard := range []bool{true, false} {
		name := map[bool]string{true: "GuardOn", false: "GuardOff"}[guard]
		t.Run(name, func(t *testing.T) {
			e := nodetest.New(t)
			e.Cfg.ARP.Guard = guard
			e.DualStack()
			d := e.Start()
			sw := d.Switch()
			b := e.AddDualPod("b", 3)
			c := e.AddDualPod("c", 4)
			evil := e.AddDualPod("evil", 5)
			bm, cm, em := nodetest.MAC(t, b), nodetest.MAC(t, c), nodetest.MAC(t, evil)
			b6, c6 := e.IP6(3), e.IP6(4)

			e.MustPing(t, "c", 3, 2)
			if !ping6(t, e, "c", b6, 5) {
				t.Fatalf("c cannot ping b over IPv6 (%s)", b6)
			}
			if !ping6(t, e, "evil", c6, 5) {
				t.Fatalf("evil cannot ping c over IPv6 (%s)", c6)
			}
			if m, ok := neighbour6(t, e, "c", b6); !ok || m != bm {
				t.Fatalf("c's neighbour entry for %s: %v %v, want %v", b6, m, ok, bm)
			}
			now := sw.Now()
			for _, want := range []struct {
				ip  netip.Addr
				mac fdb.MAC
				pod api.Pod
			}{{b6, bm, b}, {c6, cm, c}, {e.IP(3), bm, b}, {e.IP(4), cm, c}} {
				if n, ok := sw.ARP().Lookup(vswitch.DefaultVLAN, want.ip, now); !ok || n.MAC != want.mac || n.Port != want.pod.Port {
					t.Errorf("the switch's neighbour table for %s: %+v %v, want %v on port %d", want.ip, n, ok, want.mac, want.pod.Port)
				}
			}
			listed := d.Neighbours()
			first6 := len(listed)
			for i, n := range listed {
				if n.IP.Is6() && first6 == len(listed) {
					first6 = i
				}
				if n.IP.Is4() && i > first6 {
					t.Errorf("the listing has %s after an IPv6 neighbour: %v", n.IP, listed)
				}
			}
			if first6 == 0 || first6 == len(listed) {
				t.Errorf("the listing does not show both families: %v", listed)
			}

			// The kernels' own neighbour discovery (link-local DAD, NS, NA,
			// router solicitations) passed the guard and the checks.
			for name, p := range ports(sw) {
				for _, r := range []vswitch.DropReason{vswitch.DropNDPGuard, vswitch.DropNDPMalformed, vswitch.DropRAGuard} {
					if n := p.Counters.Drops[r]; n != 0 {
						t.Errorf("port %s: %d %s drops of the pods' own traffic", name, n, r)
					}
				}
			}

			w := writer(t, e, "evil", false)
			forged := [][]byte{
				// An unsolicited override to every node, and one to c.
				ndpFrame(t, allNodesMAC, em, arp.NDP{Type: arp.TypeNeighborAdvertisement, Src: b6, Dst: netip.MustParseAddr("ff02::1"),
					Target: b6, Flags: arp.FlagOverride, LLAddr: em, HasLLAddr: true}),
				ndpFrame(t, cm, em, arp.NDP{Type: arp.TypeNeighborAdvertisement, Src: e.IP6(5), Dst: c6,
					Target: b6, Flags: arp.FlagOverride, LLAddr: em, HasLLAddr: true}),
			}
			before := ports(sw)["evil"].Counters
			sent := 0
			for round := 0; round < 3; round++ {
				for _, f := range forged {
					if err := w.Write(f); err != nil {
						t.Fatal(err)
					}
					sent++
				}
				time.Sleep(200 * time.Millisecond)
			}
			after := ports(sw)["evil"].Counters
			drops := after.Drops[vswitch.DropNDPGuard] - before.Drops[vswitch.DropNDPGuard]
			got, _ := neighbour6(t, e, "c", b6)
			t.Logf("guard %v: %d forged NAs sent, %d ndp-guard drops; c's entry for %s: %v", guard, sent, drops, b6, got)
			if !guard {
				if drops != 0 {
					t.Errorf("ndp-guard drops %d with the guard off", drops)
				}
				if !testenv.Eventually(2*time.Second, func() bool { m, _ := neighbour6(t, e, "c", b6); return m == em }) {
					t.Errorf("without the guard the forgery did not show: c's entry for %s is %v, want evil's %v", b6, got, em)
				}
				return
			}
			if drops != uint64(sent) {
				t.Errorf("ndp-guard drops %d, want %d", drops, sent)
			}
			if st := sw.ARP().Stats(); st.NDPGuardDrops < uint64(sent) {
				t.Errorf("handler's NDP guard drops %d, want at least %d", st.NDPGuardDrops, sent)
			}
			if got != bm {
				t.Errorf("c's neighbour cache changed under the guard: %s -> %v, want %v", b6, got, bm)
			}
			if n, ok := sw.ARP().Lookup(vswitch.DefaultVLAN, b6, sw.Now()); !ok || n.MAC != bm {
				t.Errorf("the switch's table took the forgery: %s -> %+v", b6, n)
			}
			if !ping6(t, e, "c", b6, 3) {
				t.Errorf("c no longer reaches b over IPv6")
			}

			// A router advertisement from evil: dropped by default, delivered
			// once allowed (which shows c would have counted it).
			ra := ndpFrame(t, allNodesMAC, em, arp.NDP{Type: arp.TypeRouterAdvertisement, Src: netip.MustParseAddr("fe80::bad:1"),
				Dst: netip.MustParseAddr("ff02::1"), LLAddr: em, HasLLAddr: true})
			in0 := icmp6In(t, e, "c", "Icmp6InRouterAdvertisements")
			raDrops0 := ports(sw)["evil"].Counters.Drops[vswitch.DropRAGuard]
			for range 3 {
				if err := w.Write(ra); err != nil {
					t.Fatal(err)
				}
			}
			if !testenv.Eventually(2*time.Second, func() bool { return ports(sw)["evil"].Counters.Drops[vswitch.DropRAGuard]-raDrops0 == 3 }) {
				t.Errorf("ra-guard drops %d, want 3", ports(sw)["evil"].Counters.Drops[vswitch.DropRAGuard]-raDrops0)
			}
			time.Sleep(100 * time.Millisecond)
			if in := icmp6In(t, e, "c", "Icmp6InRouterAdvertisements"); in != in0 {
				t.Errorf("c received %d router advertisements from a pod", in-in0)
			}
			cfg := sw.ARP().Config()
			cfg.PodRouterAdvertisements = true
			sw.ARP().SetConfig(cfg)
			if err := w.Write(ra); err != nil {
				t.Fatal(err)
			}
			if !testenv.Eventually(2*time.Second, func() bool { return icmp6In(t, e, "c", "Icmp6InRouterAdvertisements") > in0 }) {
				t.Errorf("allowed, evil's router advertisement did not reach c either: the check above proves nothing")
			}
		})
	}
}
