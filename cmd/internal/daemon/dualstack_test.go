package daemon_test

import (
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/cmd/internal/nodetest"
	"github.com/tapswitch/tapswitch/cmd/internal/state"
	"github.com/tapswitch/tapswitch/internal/podnet"
	"github.com/tapswitch/tapswitch/netns"
)

func ping6(t *testing.T, e *nodetest.Env, from string, dst netip.Addr, count int) {
	t.Helper()
	r, err := podnet.Ping(bg, e.Netns(from), dst, podnet.PingOptions{Count: count, Interval: 10 * time.Millisecond, Timeout: 3 * time.Second})
	if err != nil {
		t.Fatalf("ping %s -> %s: %v", from, dst, err)
	}
	if r.Received() != count {
		t.Fatalf("ping %s -> %s: %s", from, dst, r)
	}
}

// v6State is what netns ns (a path or a name's path) has for IPv6 on
// ifName: its global addresses with their flags, and the default route's
// next hop.
func v6State(t *testing.T, ns, ifName string) (addrs map[netip.Prefix]int, defGw netip.Addr) {
	t.Helper()
	addrs = make(map[netip.Prefix]int)
	err := netns.FromPath(ns).Run(func() error {
		l, err := netlink.LinkByName(ifName)
		if err != nil {
			return err
		}
		as, err := netlink.AddrList(l, netlink.FAMILY_V6)
		if err != nil {
			return err
		}
		for _, a := range as {
			ip, _ := netip.AddrFromSlice(a.IP)
			ones, _ := a.Mask.Size()
			if !ip.IsLinkLocalUnicast() {
				addrs[netip.PrefixFrom(ip, ones)] = a.Flags
			}
		}
		rts, err := netlink.RouteList(l, netlink.FAMILY_V6)
		if err != nil {
			return err
		}
		for _, rt := range rts {
			if rt.Dst == nil || rt.Dst.IP.Equal(net.IPv6zero) {
				defGw, _ = netip.AddrFromSlice(rt.Gw)
			}
		}
		return nil
	})

	if err != nil {
		t.Fatalf("netns %s: %v", ns, err)
	}
	return addrs, defGw
}

// TestDualStackPods: pods with an IPv4 and an IPv6 address. Each has both
// on eth0 (the IPv6 one usable at once: not tentative), an IPv6 default
// route via the gateway's IPv6 address, which the gateway TAP holds; IPv6
// ping pod to pod and pod to gateway, an IPv6 TCP transfer, the listings
// with both addresses; after a daemon restart the pods are re-attached
// from the state file with both and still talk IPv6.
func TestDualStackPods(t *testing.T) {
	e := nodetest.New(t)
	e.DualStack()
	e.Start()
	a := e.AddDualPod("a", 2)
	e.AddDualPod("b", 3)
	if a.IP != e.CIDR(2) || !slices.Equal(a.IPs, []string{e.CIDR(2), e.CIDR6(2)}) || a.MAC != "02:00:"+macTail(e.IP(2)) {
		t.Fatalf("pod a: ip %s ips %v mac %s", a.IP, a.IPs, a.MAC)
	}
	addrs, gw := v6State(t, netns.PathOf(e.Netns("a")), "eth0")
	want := netip.MustParsePrefix(e.CIDR6(2))
	if f, ok := addrs[want]; !ok || f&unix.IFA_F_TENTATIVE != 0 || f&unix.IFA_F_NODAD == 0 {
		t.Errorf("pod a's IPv6 addresses %v: want %s, nodad and not tentative", addrs, want)
	}
	if gw != e.GwAddr6 {
		t.Errorf("pod a's IPv6 default route via %v, want %s", gw, e.GwAddr6)
	}
	gwAddrs, _ := v6State(t, "/proc/self/ns/net", e.GwIf)
	if _, ok := gwAddrs[netip.PrefixFrom(e.GwAddr6, 64)]; !ok {
		t.Errorf("gateway TAP's IPv6 addresses %v, want %s/64", gwAddrs, e.GwAddr6)
	}

	traffic := func() {
		t.Helper()
		ping6(t, e, "a", e.IP6(3), 3)
		ping6(t, e, "b", e.IP6(2), 3)
		ping6(t, e, "a", e.GwAddr6, 3)
		e.MustPing(t, "a", 3, 2)
		res, err := podnet.Transfer(bg, e.Netns("a"), e.Netns("b"), e.IP6(3), 16<<20)
		if err != nil {
			t.Fatalf("IPv6 transfer a -> b: %v", err)
		}
		t.Logf("IPv6 transfer a -> b: %s", res)
	}
	traffic()

	st, err := e.Client.Status(bg)
	if err != nil || st.SubnetV6 != e.Subnet6.String() || st.GatewayV6 != e.GwAddr6.String() {
		t.Errorf("status: %+v %v", st, err)
	}
	ports := e.Ports(t)
	if p := ports["b"]; p.IP != e.CIDR(3) || !slices.Equal(p.IPs, []string{e.CIDR(3), e.CIDR6(3)}) {
		t.Errorf("port b: ip %s ips %v", p.IP, p.IPs)
	}
	if p := ports[e.GwIf]; !slices.Equal(p.IPs, []string{e.GwAddr.String(), e.GwAddr6.String()}) {
		t.Errorf("gateway port: ips %v", p.IPs)
	}

	e.Stop(false)
	b, err := os.ReadFile(filepath.Join(e.Cfg.StateDir, state.FileName))
	if err != nil {
		t.Fatal(err)
	}
	var saved state.State
	if err := json.Unmarshal(b, &saved); err != nil {
		t.Fatal(err)
	}
	if saved.SubnetV6 != e.Subnet6.String() || len(saved.Pods) != 2 || saved.Pods[0].IP != e.CIDR(2) ||
		!slices.Equal(saved.Pods[0].IPs, []string{e.CIDR(2), e.CIDR6(2)}) {
		t.Errorf("state file: %s", b)
	}
	e.Start()
	p := pods(t, e)["a"]
	if p.State != api.PodUp || !slices.Equal(p.IPs, []string{e.CIDR(2), e.CIDR6(2)}) {
		t.Fatalf("pod a after the restart: %+v", p)
	}
	traffic()
}

func macTail(a netip.Addr) string {
	b := a.As4()
	return net.HardwareAddr(b[:]).String()
}

// landedKeys are the keys the state file had before dual-stack pods.
var landedKeys = map[string][]string{
	"":        {"version", "switch", "subnet", "gateway", "pods", "updated"},
	"gateway": {"interface", "address", "mac"},
	"pod": {"name", "netns", "netns_created", "ifname", "ip", "mac", "vlan", "queues", "static", "created",
		"netns_inode", "container_id", "network"},
}

// TestSingleStackStateFile: a single-stack node's state file keeps the
// format tapswitch wrote before dual-stack pods (no key of theirs), and a
// file with only those keys is read back: the pods are re-attached and
// work.
func TestSingleStackStateFile(t *testing.T) {
	e := nodetest.New(t)
	e.Start()
	e.AddQuietPod("a", 2)
	e.AddQuietPod("b", 3)
	e.Stop(false)
	path := filepath.Join(e.Cfg.StateDir, state.FileName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	only := func(where string, obj map[string]any) {
		for k := range obj {
			if !slices.Contains(landedKeys[where], k) {
				t.Errorf("state file: %s key %q is new in a single-stack file", where, k)
				delete(obj, k)
			}
		}
	}
	only("", m)
	only("gateway", m["gateway"].(map[string]any))
	for _, p := range m["pods"].([]any) {
		only("pod", p.(map[string]any))
	}
	b, _ = json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	e.Start()
	ps := pods(t, e)
	if ps["a"].State != api.PodUp || ps["a"].IP != e.CIDR(2) || !slices.Equal(ps["a"].IPs, []string{e.CIDR(2)}) {
		t.Fatalf("pod a from the old file: %+v", ps["a"])
	}
	e.MustPing(t, "a", 3, 2)
}

// TestDualStackPodInIPv6OffNamespace: a dual-stack pod in a namespace with
// IPv6 turned off is refused saying so, and nothing is left.
func TestDualStackPodInIPv6OffNamespace(t *testing.T) {
	e := nodetest.New(t)
	e.DualStack()
	e.Start()
	ns := e.Netns("a")
	if _, err := netns.CreateNamed(ns); err != nil {
		t.Fatal(err)
	}
	if err := podnet.DisableIPv6(ns); err != nil {
		t.Fatal(err)
	}
	_, err := e.Client.AddPod(bg, api.PodSpec{Name: "a", IP: e.CIDR(2), IPs: []string{e.CIDR6(2)}})
	if err == nil || !strings.Contains(err.Error(), "IPv6 is disabled in the namespace") {
		t.Fatalf("add: %v", err)
	}
	if ps := pods(t, e); len(ps) != 0 {
		t.Errorf("pods left: %v", ps)
	}
	if hasEth0(t, ns) {
		t.Error("TAP left in the namespace")
	}
}

func hasEth0(t *testing.T, ns string) bool {
	t.Helper()
	found := false
	if err := netns.FromPath(netns.PathOf(ns)).Run(func() error {
		_, err := netlink.LinkByName("eth0")
		found = err == nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return found
}
