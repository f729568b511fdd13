package dataplane_test

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/dataplane"
	"github.com/tapswitch/tapswitch/fdb"
	"github.com/tapswitch/tapswitch/internal/podnet"
	"github.com/tapswitch/tapswitch/internal/testenv"
	vswitch "github.com/tapswitch/tapswitch/switch"
	"github.com/tapswitch/tapswitch/tap"
)

// batch is small so that the read limit's overshoot (a batch per queue
// read when the budget ran out) is small against its budget.
const batch = 4

func needRoot(t testing.TB) {
	t.Helper()
	if why := testenv.RootSkip(false); why != "" {
		t.Skip(why)
	}
}

// uniquePrefix keeps the namespaces of concurrent or leftover test runs
// apart: every namespace a test makes is named with it.
func uniquePrefix(testing.TB) string { return testenv.NewPrefix("tdp", 6) }

// mode is a read mode: a Dispatcher, made for one test.
type mode struct {
	name string
	make func(t testing.TB) dataplane.Dispatcher
}

var modes = []mode{
	{"readers", func(testing.TB) dataplane.Dispatcher { return dataplane.Readers{Batch: batch} }},
	{"poller", func(t testing.TB) dataplane.Dispatcher {
		p, err := dataplane.NewPoller(tap.PollerConfig{Spin: 50 * time.Microsecond, Batch: batch, CPU: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close) // registered before any port's: runs after their Close
		return p
	}},
}

// forModes runs body once per read mode, as a subtest.
func forModes(t *testing.T, body func(t *testing.T, disp dataplane.Dispatcher)) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			needRoot(t)
			body(t, m.make(t))
		})
	}
}

func newSwitch(t testing.TB) *vswitch.Switch {
	t.Helper()
	cfg := vswitch.DefaultConfig()
	cfg.Name, cfg.HeaderLen = "dptest", vswitch.VnetHdrLen
	sw, err := vswitch.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sw.Close)
	return sw
}

// newPod creates a pod's TAP, with queues opened for polled, in a fresh
// namespace named ns; the cleanup deletes both.
func newPod(t testing.TB, ns, addr string, queues int, polled bool) (*tap.Device, tap.PodConfig) {
	t.Helper()
	cfg := tap.PodConfig{Name: "pod-" + ns, NetNS: ns, Addr: netip.MustParsePrefix(addr), Queues: queues, Polled: polled}
	t.Cleanup(func() {
		if err := tap.DeletePod(cfg, true); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	dev, err := tap.CreatePod(cfg)
	if err != nil {
		t.Fatalf("CreatePod %s: %v", ns, err)
	}
	t.Cleanup(func() { dev.Close() })
	return dev, cfg
}

// start makes dev a port of sw read by disp; the cleanup takes it off the
// switch and closes it.
func start(t testing.TB, sw *vswitch.Switch, dev *tap.Device, disp dataplane.Dispatcher, cfg dataplane.Config) *dataplane.Port {
	t.Helper()
	p, err := dataplane.Start(sw, dev, disp, cfg)
	if err != nil {
		t.Fatalf("Start %s: %v", cfg.Port.Name, err)
	}
	t.Cleanup(func() {
		sw.RemovePort(p.ID())
		p.Close()
	})
	return p
}

func counters(t testing.TB, sw *vswitch.Switch, id fdb.PortID) vswitch.Counters {
	t.Helper()
	pi, ok := sw.Port(id)
	if !ok {
		t.Fatalf("port %d not on the switch", id)
	}
	return pi.Counters
}

// udpConn is a UDP socket bound to the pod's address inside its namespace.
func udpConn(t testing.TB, cfg tap.PodConfig) *net.UDPConn {
	t.Helper()
	c, err := podnet.ListenPacket(context.Background(), cfg.NetNS, "udp4", net.JoinHostPort(cfg.Addr.Addr().String(), "0"))
	if err != nil {
		t.Fatalf("listen in %s: %v", cfg.NetNS, err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.UDPConn)
}

// exchange sends msg from src to dst until it arrives, resending because
// the first datagram may wait on ARP resolution.
func exchange(t testing.TB, src, dst *net.UDPConn, msg string) {
	t.Helper()
	buf := make([]byte, 64)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := src.WriteToUDP([]byte(msg), dst.LocalAddr().(*net.UDPAddr)); err != nil {
			t.Fatalf("send %s: %v", msg, err)
		}
		dst.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, _, err := dst.ReadFromUDP(buf)
		if err == nil && string(buf[:n]) == msg {
			return
		}
	}
	t.Fatalf("%s: no datagram from %s to %s", msg, src.LocalAddr(), dst.LocalAddr())
}

// packetSocket is a packet socket on the pod's eth0, opened inside its
// namespace, that writes frames past the qdisc, as a flooding pod would.
// A frame the TAP drops comes back to its write as ENOBUFS.
func packetSocket(t testing.TB, cfg tap.PodConfig) *podnet.FrameWriter {
	t.Helper()
	w, err := podnet.OpenFrameWriter(cfg.NetNS, "eth0", podnet.FrameOptions{BypassQdisc: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// frame is a minimal Ethernet frame from src to dst of an unassigned
// EtherType (local experimental), which no stack answers.
func frame(dst, src net.HardwareAddr) []byte {
	f := make([]byte, 60)
	copy(f, dst)
	copy(f[6:], src)
	f[12], f[13] = 0x88, 0xb5
	return f
}

// eventually polls cond until it holds or d has passed.
func eventually(d time.Duration, cond func() bool) bool { return testenv.Eventually(d, cond) }
