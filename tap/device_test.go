package tap

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/netns"
)

func TestPodsTalkThroughCopyLoop(t *testing.T) {
	needRoot(t)
	p := uniquePrefix(t)
	a, cfgA := newPod(t, p+"a", "10.250.0.2/24", 2)
	b, cfgB := newPod(t, p+"b", "10.250.0.3/24", 2)
	t.Logf("offloads accepted: %s; queues: %d", a.Offloads(), len(a.Queues()))
	if !strings.Contains(a.Offloads(), "tso4") {
		t.Fatalf("offloads %q lack tso4", a.Offloads())
	}
	for _, cfg := range []PodConfig{cfgA, cfgB} {
		err := netns.FromPath(netns.PathOf(cfg.NetNS)).Run(func() error {
			on, err := tsoOn("eth0")
			if err == nil && !on {
				t.Errorf("%s: tcp-segmentation-offload off inside the pod", cfg.NetNS)
			}
			return err
		})

		if err != nil {
			t.Fatalf("ethtool TSO in %s: %v", cfg.NetNS, err)
		}
	}

	br := startBridge(t, a, b)
	udpRoundTrip(t, cfgA, cfgB)

	// TCP, a few MB, to see the pod's stack hand over TSO super-frames.
	var ln net.Listener
	err := netns.FromPath(netns.PathOf(cfgB.NetNS)).Run(func() (err error) {
		ln, err = net.Listen("tcp4", cfgB.Addr.Addr().String()+":0")
		return err
	})

	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	payload := make([]byte, 8<<20)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	got := make(chan [32]byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- [32]byte{}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		h := sha256.New()
		io.Copy(h, c)
		got <- [32]byte(h.Sum(nil))
	}()
	var conn net.Conn
	err = netns.FromPath(netns.PathOf(cfgA.NetNS)).Run(func() (err error) {
		conn, err = net.DialTimeout("tcp4", ln.Addr().String(), 5*time.Second)
		return err
	})

	if err != nil {
		t.Fatalf("dial across the copy loop: %v", err)
	}
	start := time.Now()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := conn.Write(payload); err != nil {
		t.Fatalf("tcp write: %v", err)
	}
	conn.Close()
	if sum := <-got; sum != sha256.Sum256(payload) {
		t.Fatal("tcp payload arrived damaged or incomplete")
	}
	elapsed := time.Since(start)
	max := br.maxSize.Load()
	t.Logf("8 MiB over TCP in %v (%.2f Gbit/s), %d frames, largest frame %d bytes incl. virtio-net header",
		elapsed, float64(len(payload))*8/elapsed.Seconds()/1e9, br.frames.Load(), max)
	if max <= VnetHdrLen+1514 {
		t.Fatalf("largest frame %d bytes: no TSO super-frame reached the switch", max)
	}
}

func TestAttachAfterCloseKeepsPodConfig(t *testing.T) {
	needRoot(t)
	p := uniquePrefix(t)
	a, cfgA := newPod(t, p+"a", "10.250.0.2/24", 2)
	b, cfgB := newPod(t, p+"b", "10.250.0.3/24", 2)
	macA := a.MAC()
	a.Close()
	b.Close()

	err := netns.FromPath(netns.PathOf(cfgA.NetNS)).Run(func() error {
		link, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if tt, ok := link.(*netlink.Tuntap); !ok || tt.NonPersist {
			t.Errorf("eth0 after Close: %T %+v, want a persistent tuntap", link, link)
		}
		addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		if len(addrs) != 1 || addrs[0].IPNet.String() != cfgA.Addr.String() {
			t.Errorf("eth0 addresses after Close: %v, want %s", addrs, cfgA.Addr)
		}
		return nil
	})

	if err != nil {
		t.Fatal(err)
	}

	a2, err := Attach(PodConfig{Name: cfgA.Name, NetNS: cfgA.NetNS, Queues: 2})
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	b2, err := Attach(PodConfig{Name: cfgB.Name, NetNS: netns.PathOf(cfgB.NetNS), Queues: 3})
	if err != nil {
		t.Fatalf("Attach by path: %v", err)
	}
	if !bytes.Equal(a2.MAC(), macA) || a2.Name() != "eth0" || len(b2.Queues()) != 3 {
		t.Fatalf("attached %s %s with %d queues, want eth0 %s", a2.Name(), a2.MAC(), len(b2.Queues()), macA)
	}
	startBridge(t, a2, b2)
	udpRoundTrip(t, cfgA, cfgB)
}

func TestAttachCreatesNothing(t *testing.T) {
	needRoot(t)
	_, cfg := newPod(t, uniquePrefix(t), "10.250.0.2/24", 1)
	cfg.IfName = "eth1"
	if _, err := Attach(cfg); err == nil || !strings.Contains(err.Error(), `pod "`+cfg.Name+`": tap "eth1"`) {
		t.Fatalf("Attach to a missing TAP: %v", err)
	}
	cfg.IfName = "lo"
	if _, err := Attach(cfg); err == nil || !strings.Contains(err.Error(), "not a multi-queue TAP") {
		t.Fatalf("Attach to loopback: %v", err)
	}
	if names := linkNames(t, netns.PathOf(cfg.NetNS)); !slices.Equal(names, []string{"lo", "eth0"}) {
		t.Fatalf("links after failed Attach: %v, want [lo eth0]", names)
	}
}

func TestCreatePodRejectsBadConfig(t *testing.T) {
	good := PodConfig{Name: "web-1", NetNS: "tstnever", Addr: netip.MustParsePrefix("10.250.0.2/24")}
	for _, tc := range []struct {
		name   string
		change func(*PodConfig)
		want   string
	}{
		{"no name", func(c *PodConfig) { c.Name = "" }, "empty pod name"},
		{"no netns", func(c *PodConfig) { c.NetNS = "" }, `pod "web-1": no netns`},
		{"bad netns name", func(c *PodConfig) { c.NetNS = ".." }, `pod "web-1": netns "..": invalid name`},
		{"long ifname", func(c *PodConfig) { c.IfName = "abcdefghijklmnop" }, `pod "web-1": tap "abcdefghijklmnop": invalid interface name`},
		{"no address", func(c *PodConfig) { c.Addr = netip.Prefix{} }, `pod "web-1": address "invalid Prefix": invalid prefix`},
		{"gateway family", func(c *PodConfig) { c.Gateway = netip.MustParseAddr("fd00::1") }, `pod "web-1": gateway fd00::1: not the family`},
		{"too many queues", func(c *PodConfig) { c.Queues = 300 }, `pod "web-1": 300 queues`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.change(&cfg)
			dev, err := CreatePod(cfg)
			if err == nil {
				dev.Close()
				DeletePod(cfg, true)
				t.Fatal("CreatePod accepted it")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := os.Stat(netns.PathOf(good.NetNS)); err == nil {
		t.Fatal("a rejected config left a netns behind")
	}
}

func TestCreatePodRollsBack(t *testing.T) {
	needRoot(t)
	p := uniquePrefix(t)
	tmp := p + "tmp"
	orig := newTempName
	newTempName = func() string { return tmp }
	t.Cleanup(func() { newTempName = orig })

	t.Run("gateway outside subnet removes TAP and new netns", func(t *testing.T) {
		cfg := PodConfig{
			Name:    "web-1",
			NetNS:   p + "a",
			Addr:    netip.MustParsePrefix("10.250.0.2/24"),
			Gateway: netip.MustParseAddr("10.99.0.1"),
		}
		t.Cleanup(func() { DeletePod(cfg, true) })
		_, err := CreatePod(cfg)
		if err == nil {
			t.Fatal("CreatePod accepted an unreachable gateway")
		}
		t.Logf("error: %v", err)
		if !strings.HasPrefix(err.Error(), `pod "web-1": tap "eth0": default route via 10.99.0.1:`) {
			t.Errorf("error %q does not name the pod, tap and gateway", err)
		}
		if _, err := os.Stat(netns.PathOf(cfg.NetNS)); err == nil {
			t.Error("netns created by the failed call is still there")
		}
		if hostLinkExists(t, tmp) {
			t.Error("temporary TAP left in the host namespace")
		}
	})

	t.Run("duplicate name keeps the first pod and the netns", func(t *testing.T) {
		_, cfg := newPod(t, p+"b", "10.250.0.2/24", 2)
		dup := cfg
		dup.Name = "dup"
		dup.Addr = netip.MustParsePrefix("10.250.0.5/24")
		if _, err := CreatePod(dup); err == nil || !strings.HasPrefix(err.Error(), `pod "dup": tap "`+tmp+`": rename to "eth0": `) {
			t.Fatalf("second CreatePod of eth0: %v", err)
		}
		if names := linkNames(t, netns.PathOf(cfg.NetNS)); !slices.Equal(names, []string{"lo", "eth0"}) {
			t.Fatalf("links in the pod after the failed call: %v, want [lo eth0]", names)
		}
		if hostLinkExists(t, tmp) {
			t.Error("temporary TAP left in the host namespace")
		}
		err := netns.FromPath(netns.PathOf(cfg.NetNS)).Run(func() error {
			link, err := netlink.LinkByName("eth0")
			if err != nil {
				return err
			}
			addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
			if err == nil && (len(addrs) != 1 || addrs[0].IPNet.String() != cfg.Addr.String()) {
				t.Errorf("first pod's addresses became %v", addrs)
			}
			return err
		})

		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("temporary name taken by another device is not adopted", func(t *testing.T) {
		gw, err := CreateGateway(GatewayConfig{Name: tmp, Addr: netip.MustParsePrefix("198.18.251.1/24"), Queues: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { gw.Close(); DeleteGateway(tmp) })
		cfg := PodConfig{Name: "web-1", NetNS: p + "c", Addr: netip.MustParsePrefix("10.250.0.2/24")}
		t.Cleanup(func() { DeletePod(cfg, true) })
		_, err = CreatePod(cfg)
		if !errors.Is(err, unix.EBUSY) {
			t.Fatalf("CreatePod with its temporary name taken: %v, want EBUSY", err)
		}
		if err := gw.Check(); err != nil {
			t.Fatalf("the other device suffered: %v", err)
		}
		if _, err := os.Stat(netns.PathOf(cfg.NetNS)); err == nil {
			t.Error("netns created by the failed call is still there")
		}
	})
}

func TestGateway(t *testing.T) {
	needRoot(t)
	name := uniquePrefix(t) + "gw"
	// 198.18.0.0/15 is set aside for benchmarks, so it clashes with no real network.
	cfg := GatewayConfig{Name: name, Addr: netip.MustParsePrefix("198.18.252.1/24"), MTU: 9000, Queues: 2}
	t.Cleanup(func() {
		if err := DeleteGateway(name); err != nil {
			t.Error(err)
		}
	})
	gw, err := CreateGateway(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	if gw.NetNS() != "" || len(gw.Queues()) != 2 {
		t.Fatalf("gateway in %q with %d queues", gw.NetNS(), len(gw.Queues()))
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if link.Attrs().Flags&net.FlagUp == 0 || link.Attrs().MTU != 9000 {
		t.Errorf("gateway link %+v: want up, mtu 9000", link.Attrs())
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil || len(addrs) != 1 || addrs[0].IPNet.String() != cfg.Addr.String() {
		t.Errorf("gateway addresses %v, %v; want %s", addrs, err, cfg.Addr)
	}
	if on, err := tsoOn(name); err != nil || !on {
		t.Errorf("gateway TSO on: %v, %v", on, err)
	}

	if _, err := CreateGateway(cfg); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("second CreateGateway of %s: %v, want EBUSY", name, err)
	}
	if err := gw.Check(); err != nil {
		t.Fatalf("first gateway after the refused second: %v", err)
	}

	gw.Close()
	gw2, err := AttachGateway(name, 1, false)
	if err != nil {
		t.Fatalf("AttachGateway: %v", err)
	}
	defer gw2.Close()
	if !bytes.Equal(gw2.MAC(), gw.MAC()) {
		t.Errorf("reattached MAC %s, want %s", gw2.MAC(), gw.MAC())
	}
	if err := gw2.SetTxQueueLen(5000); err != nil {
		t.Fatal(err)
	}
	if link, err := netlink.LinkByName(name); err != nil || link.Attrs().TxQLen != 5000 {
		t.Fatalf("txqueuelen after SetTxQueueLen(5000): %v %v", link.Attrs().TxQLen, err)
	}
	if err := DeleteGateway(name); err != nil {
		t.Fatal(err)
	}
	if hostLinkExists(t, name) {
		t.Fatal("gateway still there after DeleteGateway")
	}
}
