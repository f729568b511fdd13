package daemon

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/cmd/internal/config"
	"github.com/tapswitch/tapswitch/cmd/internal/state"
	"github.com/tapswitch/tapswitch/fdb"
)

func TestValidName(t *testing.T) {
	for _, ok := range []string{"a", "web-1", "p1", "0pod", "a-b-c", "x23456789012345678901234567890123456789012345678901234567890123"} {
		if err := ValidName(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Web", "web_1", "-a", "a-", "a.b", "a/b", "..", "é", "x234567890123456789012345678901234567890123456789012345678901234"} {
		if err := ValidName(bad); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%q accepted or wrong kind: %v", bad, err)
		}
	}
}

func TestDeriveMAC(t *testing.T) {
	m := DeriveMAC(netip.MustParseAddr("10.244.0.7"))
	if m != (fdb.MAC{0x02, 0x00, 10, 244, 0, 7}) || m.IsMulticast() {
		t.Errorf("%v", m)
	}
}

// TestCheckWithoutRoot runs the request checks on a daemon that was never
// started: no device is touched.
func TestCheckWithoutRoot(t *testing.T) {
	d, err := New(config.Default(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.sw.Close()
	s, err := d.checkLocked(api.PodSpec{Name: "web-1", IP: "10.244.0.9"})
	if err != nil {
		t.Fatal(err)
	}
	if s.ip != netip.MustParsePrefix("10.244.0.9/24") || s.vlan != 1 || s.mac != DeriveMAC(s.ip.Addr()) {
		t.Errorf("%+v", s)
	}
	// A live pod (it has a link) holds its name, address and MAC.
	d.pods["a"] = &pod{ip: s.ip, mac: s.mac, link: &link{}, rec: state.Pod{Name: "a", Netns: "a"}}
	d.pods["c"] = &pod{ip: netip.MustParsePrefix("10.244.0.12/24"), mac: DeriveMAC(netip.MustParseAddr("10.244.0.12")), link: &link{},
		rec: state.Pod{Name: "c", Netns: "/proc/7/ns/net", ContainerID: "c1d2"}}
	for _, c := range []struct {
		spec api.PodSpec
		kind error
		want string
	}{
		{api.PodSpec{Name: "b", IP: "10.244.0.9/24"}, api.ErrConflict, "pod \"b\": ip 10.244.0.9: already used by pod \"a\"; `tapswitch pod del a` frees it"},
		{api.PodSpec{Name: "b", IP: "10.244.0.12/24"}, api.ErrConflict, "pod \"b\": ip 10.244.0.12: already used by pod \"c\" (container c1d2); `tapswitch pod del c` frees it"},
		{api.PodSpec{Name: "b", IP: "10.244.0.10/24", MAC: s.mac.String()}, api.ErrConflict, "pod \"b\": mac 02:00:0a:f4:00:09: already used by pod \"a\"; `tapswitch pod del a` frees it"},
		{api.PodSpec{Name: "web-1", IP: "10.0.0.300/24"}, api.ErrInvalid, `pod "web-1": ip "10.0.0.300/24": invalid CIDR`},
		{api.PodSpec{Name: "web-1", IP: "10.245.0.3/24"}, api.ErrInvalid, `pod "web-1": ip "10.245.0.3/24": outside the pod subnet 10.244.0.0/24`},
		{api.PodSpec{Name: "a", IP: "10.244.0.11"}, api.ErrConflict, "pod \"a\": already exists (up, netns \"a\"); `tapswitch pod del a` frees it"},
		{api.PodSpec{Name: "c", IP: "10.244.0.11"}, api.ErrConflict, "pod \"c\": already exists (up, netns \"/proc/7/ns/net\", container c1d2); `tapswitch pod del c` frees it"},
		{api.PodSpec{Name: "web-1", IP: "fd00::5/64"}, api.ErrInvalid, `pod "web-1": ip "fd00::5/64": IPv6, but the node has no IPv6 pod subnet (subnet_v6)`},
	} {
		_, err := d.checkLocked(c.spec)
		if !errors.Is(err, c.kind) || err.Error() != c.want {
			t.Errorf("%+v: %v, want %q", c.spec, err, c.want)
		}
	}
}

// TestCheckGonePodsAreReclaimed: what a gone pod (no link) holds, its name,
// address, MAC, container, is no conflict: the check lists the pod to be
// reclaimed, with what it held, and a live pod's hold still refuses.
func TestCheckGonePodsAreReclaimed(t *testing.T) {
	d, err := New(config.Default(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.sw.Close()
	gone := func(name, ip, cid string) *pod {
		p := &pod{ip: netip.MustParsePrefix(ip), rec: state.Pod{Name: name, IfName: podIfName, ContainerID: cid}, reason: "tap or netns deleted"}
		p.mac = DeriveMAC(p.ip.Addr())
		d.pods[name] = p
		return p
	}
	byName := gone("web-1", "10.244.0.20/24", "")
	byIP := gone("cni-old", "10.244.0.21/24", "0ld")
	byCID := gone("cni-x", "10.244.0.22/24", "c1d2")
	sp, err := d.checkLocked(api.PodSpec{Name: "web-1", IP: "10.244.0.21", ContainerID: "c1d2"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[*pod]string{byName: "name", byIP: "ip 10.244.0.21", byCID: "container c1d2 ifname eth0"}
	if len(sp.reclaim) != len(want) {
		t.Fatalf("reclaim %v, want %v", sp.reclaim, want)
	}
	for p, w := range want {
		if sp.reclaim[p] != w {
			t.Errorf("reclaim of %s: %q, want %q", p.rec.Name, sp.reclaim[p], w)
		}
	}
	byIP.link = &link{}
	if _, err := d.checkLocked(api.PodSpec{Name: "web-1", IP: "10.244.0.21"}); !errors.Is(err, api.ErrConflict) {
		t.Errorf("an address of a live pod: %v, want a conflict", err)
	}
}

// TestCheckDualStack: one address of each family, the IPv4 one required,
// the IPv6 one in subnet_v6 with its length.
func TestCheckDualStack(t *testing.T) {
	cfg := config.Default()
	cfg.SubnetV6 = "fd00:10:244::/64"
	d, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.sw.Close()
	sp, err := d.checkLocked(api.PodSpec{Name: "a", IP: "10.244.0.9/24", IPs: []string{"fd00:10:244::9"}})
	if err != nil {
		t.Fatal(err)
	}
	if sp.ip.String() != "10.244.0.9/24" || sp.ip6.String() != "fd00:10:244::9/64" || sp.mac != DeriveMAC(sp.ip.Addr()) {
		t.Errorf("%+v", sp)
	}
	// The IPv6 address first is fine too.
	if sp, err := d.checkLocked(api.PodSpec{Name: "a", IP: "fd00:10:244::9/64", IPs: []string{"10.244.0.9"}}); err != nil || sp.ip.String() != "10.244.0.9/24" {
		t.Errorf("v6 first: %+v %v", sp, err)
	}
	d.pods["b"] = &pod{ip: netip.MustParsePrefix("10.244.0.10/24"), ip6: netip.MustParsePrefix("fd00:10:244::a/64"),
		mac: DeriveMAC(netip.MustParseAddr("10.244.0.10")), link: &link{}, rec: state.Pod{Name: "b"}}
	for _, c := range []struct {
		spec api.PodSpec
		kind error
		want string
	}{
		{api.PodSpec{Name: "x", IP: "fd00:10:244::9/64"}, api.ErrInvalid, `pod "x": ip "fd00:10:244::9/64": an IPv4 address in the pod subnet 10.244.0.0/24 is required`},
		{api.PodSpec{Name: "x", IP: "10.244.0.9/24", IPs: []string{"10.244.0.8/24"}}, api.ErrInvalid, `pod "x": ip "10.244.0.8/24": a second IPv4 address (at most one of each family)`},
		{api.PodSpec{Name: "x", IP: "10.244.0.9/24", IPs: []string{"fd00:10:244::9", "fd00:10:244::8"}}, api.ErrInvalid, `pod "x": ip "fd00:10:244::8": a second IPv6 address`},
		{api.PodSpec{Name: "x", IP: "10.244.0.9/24", IPs: []string{"fd00:11::9/64"}}, api.ErrInvalid, `pod "x": ip "fd00:11::9/64": outside the pod subnet fd00:10:244::/64`},
		{api.PodSpec{Name: "x", IP: "10.244.0.9/24", IPs: []string{"fd00:10:244::9/80"}}, api.ErrInvalid, `pod "x": ip "fd00:10:244::9/80": prefix length /80 differs from the pod subnet fd00:10:244::/64`},
		{api.PodSpec{Name: "x", IP: "10.244.0.9/24", IPs: []string{"fd00:10:244::"}}, api.ErrInvalid, `the subnet's router anycast address`},
		{api.PodSpec{Name: "x", IP: "10.244.0.9/24", IPs: []string{"fd00:10:244::1"}}, api.ErrConflict, `pod "x": ip "fd00:10:244::1": is the gateway's address`},
		{api.PodSpec{Name: "x", IP: "10.244.0.9/24", IPs: []string{"::ffff:10.244.0.7"}}, api.ErrInvalid, `an IPv4-mapped IPv6 address`},
		{api.PodSpec{Name: "x", IP: "10.244.0.9/24", IPs: []string{"fe80::1%eth0"}}, api.ErrInvalid, `pod "x": ip "fe80::1%eth0": invalid address`},
		{api.PodSpec{Name: "x", IP: "10.244.0.9/24", IPs: []string{"fd00:10:244::a"}}, api.ErrConflict, "pod \"x\": ip fd00:10:244::a: already used by pod \"b\"; `tapswitch pod del b` frees it"},
	} {
		_, err := d.checkLocked(c.spec)
		if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.spec, err, c.want)
		}
	}
}

// FuzzCheckPodSpec: any addresses give a checked spec or an error of the
// caller's kind naming the pod; an accepted spec has one IPv4 address in
// the subnet and at most one IPv6 address in subnet_v6, neither the
// gateway's, with the subnets' lengths.
func FuzzCheckPodSpec(f *testing.F) {
	cfg := config.Default()
	cfg.SubnetV6 = "fd00:10:244::/64"
	d, err := New(cfg, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { d.sw.Close() })
	f.Add("10.244.0.9/24", "fd00:10:244::9")
	f.Add("fd00:10:244::9/64", "10.244.0.9")
	f.Add("10.244.0.9", "")
	f.Add("10.244.0.9/24", "::ffff:10.244.0.9")
	f.Add("10.244.0.1", "fd00:10:244::1/64")
	f.Fuzz(func(t *testing.T, ip, ip2 string) {
		s := api.PodSpec{Name: "p", IP: ip}
		if ip2 != "" {
			s.IPs = []string{ip2}
		}
		sp, err := d.checkLocked(s)
		if err != nil {
			if !errors.Is(err, api.ErrInvalid) && !errors.Is(err, api.ErrConflict) || !strings.HasPrefix(err.Error(), `pod "p": `) {
				t.Fatalf("%q %q: %v", ip, ip2, err)
			}
			return
		}
		if !sp.ip.Addr().Is4() || !d.subnet.Contains(sp.ip.Addr()) || sp.ip.Bits() != d.subnet.Bits() || sp.ip.Addr() == d.gwAddr {
			t.Fatalf("%q %q: accepted IPv4 %v", ip, ip2, sp.ip)
		}
		if sp.ip6.IsValid() && (!d.subnet6.Contains(sp.ip6.Addr()) || sp.ip6.Bits() != d.subnet6.Bits() || sp.ip6.Addr() == d.gwAddr6) {
			t.Fatalf("%q %q: accepted IPv6 %v", ip, ip2, sp.ip6)
		}
	})
}
