// Package nodetest gives a root test its own corner of the machine: a
// unique prefix for namespace and link names, a pod subnet nothing else on
// the host routes, its own state directory and control socket, a daemon
// started and stopped on request, and a cleanup that removes every
// namespace and link carrying the prefix, even when the test failed.
package nodetest

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/cmd/internal/config"
	"github.com/tapswitch/tapswitch/cmd/internal/daemon"
	"github.com/tapswitch/tapswitch/fdb"
	"github.com/tapswitch/tapswitch/internal/podnet"
	"github.com/tapswitch/tapswitch/internal/testenv"
	"github.com/tapswitch/tapswitch/netns"
)

// RequireRoot skips t unless it runs as root with /dev/net/tun, and in
// -short mode (`make test-short` leaves out root-only tests).
func RequireRoot(t testing.TB) {
	t.Helper()
	if why := testenv.RootSkip(testing.Short()); why != "" {
		t.Skip(why + ": makes network namespaces and TAP devices")
	}
}

// Env is one test's isolated node.
type Env struct {
	T      testing.TB
	Prefix string // of namespace names ("t1a2b3-") and the gateway ("t1a2b3gw")
	GwIf   string
	Subnet netip.Prefix
	GwAddr netip.Addr
	// Subnet6 and GwAddr6 are the IPv6 pod subnet and gateway address,
	// set by DualStack; invalid otherwise.
	Subnet6 netip.Prefix
	GwAddr6 netip.Addr
	Dir     string
	Cfg     config.Config
	Client  *api.Client

	// NodeNS, when set, is the network namespace (a name) the daemon runs
	// in, standing for the node's host namespace: the gateway TAP, its
	// routes and the daemon's nftables table are made there, never in the
	// real host's. NewNode sets it.
	NodeNS string

	// Logs are the daemon's log entries at info and above once
	// CaptureLogs was called (the test's output shows warnings and errors
	// only); nil before.
	Logs *observer.ObservedLogs

	d   *daemon.Daemon
	srv *api.Server
	log *zap.Logger
}

// New makes an environment and registers its cleanup; the daemon is not
// started.
func New(t testing.TB) *Env {
	t.Helper()
	RequireRoot(t)
	id := testenv.NewPrefix("t", 5)
	e := &Env{T: t, Prefix: id + "-", GwIf: id + "gw", log: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))}
	var err error
	if e.Subnet, err = testenv.FreeSubnet(250); err != nil {
		t.Fatal(err)
	}
	e.GwAddr = e.Subnet.Addr().Next()
	// Short: a unix socket path is limited to 108 bytes.
	if e.Dir, err = os.MkdirTemp("", "ts"); err != nil {
		t.Fatal(err)
	}
	// Tests that want the daemon's nftables rules run it in a node
	// namespace (NewNode).
	cfg := config.Isolated("test", e.Dir, e.Prefix, e.Subnet.String(), e.GwAddr.String(), e.GwIf)
	e.Cfg = cfg
	e.Client = api.NewClient(cfg.Socket)
	t.Cleanup(func() {
		e.Stop(true)
		if err := testenv.Sweep(e.Prefix, e.GwIf); err != nil {
			t.Error(err)
		}
		if left := testenv.Left(e.Prefix, e.GwIf); len(left) > 0 {
			t.Errorf("left behind after the test: %s", strings.Join(left, ", "))
		}
		os.RemoveAll(e.Dir)
	})
	return e
}

// NewNode makes an environment whose daemon runs in a network namespace of
// its own, PREFIX+"node", that plays the node's host namespace; subnet is
// the node's pod CIDR (any, since nothing outside that namespace routes
// it). The nat rules are on as in the default configuration. The cleanup
// deletes the node namespace with everything in it.
func NewNode(t testing.TB, subnet netip.Prefix) *Env {
	t.Helper()
	e := New(t)
	e.NodeNS = e.Prefix + "node"
	if err := testenv.QuietNamespace(e.NodeNS); err != nil {
		t.Fatal(err)
	}
	e.Subnet = subnet.Masked()
	e.GwAddr = e.Subnet.Addr().Next()
	def := config.Default()
	e.Cfg.Subnet = e.Subnet.String()
	e.Cfg.Gateway.Address = e.GwAddr.String()
	e.Cfg.NAT = def.NAT
	return e
}

// InNode runs fn on a thread inside the node namespace (NewNode), or
// directly when the daemon runs in the host's.
func (e *Env) InNode(fn func() error) error {
	if e.NodeNS == "" {
		return fn()
	}
	return netns.FromPath(netns.PathOf(e.NodeNS)).Run(fn)
}

// NodeSysctl writes value to /proc/sys/NAME (net/ipv4/ip_forward) inside
// the node namespace; only the node's namespace is changed.
func (e *Env) NodeSysctl(name, value string) {
	e.T.Helper()
	if e.NodeNS == "" {
		e.T.Fatalf("sysctl %s: not a node environment (NewNode); refusing to change the host", name)
	}
	err := e.InNode(func() error {
		// /proc/sys/net shows the namespace of the thread that opens it.
		return os.WriteFile("/proc/sys/"+name, []byte(value+"\n"), 0o644)
	})
	if err != nil {
		e.T.Fatalf("netns %s: sysctl %s=%s: %v", e.NodeNS, name, value, err)
	}
}

// WriteConfig writes the environment's config to DIR/config.yaml, for a
// daemon started as its own process, and returns the path.
func (e *Env) WriteConfig() string {
	e.T.Helper()
	b, err := e.Cfg.Marshal()
	if err != nil {
		e.T.Fatal(err)
	}
	path := filepath.Join(e.Dir, "config.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		e.T.Fatal(err)
	}
	return path
}

// Start runs a daemon in this process with the environment's config and
// serves its API on the environment's socket.
func (e *Env) Start() *daemon.Daemon {
	e.T.Helper()
	d, err := daemon.New(e.Cfg, e.log)
	if err != nil {
		e.T.Fatal(err)
	}
	if err := e.InNode(func() error { return d.Start(context.Background()) }); err != nil {
		e.InNode(func() error { return d.Close(false) })
		e.T.Fatal(err)
	}
	srv, err := api.Listen(e.Cfg.Socket, d, e.log)
	if err != nil {
		d.Close(false)
		e.T.Fatal(err)
	}
	e.d, e.srv = d, srv
	e.quietGateway()
	return d
}

// quietGateway turns IPv6 off on the gateway TAP, so that the host's
// neighbour discovery does not add frames to the counters a test checks;
// not for dual-stack pods, which need the gateway's IPv6 address.
func (e *Env) quietGateway() {
	if e.Subnet6.IsValid() {
		return
	}
	e.InNode(func() error {
		p := "/proc/sys/net/ipv6/conf/" + e.GwIf + "/disable_ipv6"
		if _, err := os.Stat(p); err == nil {
			os.WriteFile(p, []byte("1\n"), 0o644)
		}
		return nil
	})
}

// Daemon is the running daemon, or nil.
func (e *Env) Daemon() *daemon.Daemon { return e.d }

// Stop stops the daemon, deleting its pods or keeping them for a restart.
func (e *Env) Stop(removePods bool) {
	if e.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		e.srv.Close(ctx)
		cancel()
		e.srv = nil
	}
	if e.d != nil {
		if err := e.InNode(func() error { return e.d.Close(removePods) }); err != nil {
			e.T.Errorf("daemon close: %v", err)
		}
		e.d = nil
	}
}

// CaptureLogs keeps the daemon's log entries at info and above in Logs,
// for a test that checks what the daemon logged. It holds every entry until
// the test ends, so long tests leave it off. Call it before Start.
func (e *Env) CaptureLogs() {
	obs, logs := observer.New(zap.InfoLevel)
	e.Logs = logs
	e.log = e.log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return zapcore.NewTee(c, obs) }))
}

// DualStack gives the daemon an IPv6 pod subnet, a unique local /64 with
// 40 random bits (nothing on the host routes it) and its first address as
// the gateway's: pods may then have an IPv6 address too (AddDualPod). Call
// it before Start.
func (e *Env) DualStack() {
	e.T.Helper()
	var a [16]byte
	a[0] = 0xfd
	for i := 1; i < 6; i++ {
		a[i] = byte(rand.IntN(256))
	}
	a[6], a[7] = 0x02, 0x50 // like the IPv4 10.250.X.0/24
	e.Subnet6 = netip.PrefixFrom(netip.AddrFrom16(a), 64)
	e.GwAddr6 = e.Subnet6.Addr().Next()
	e.Cfg.SubnetV6 = e.Subnet6.String()
	e.Cfg.Gateway.AddressV6 = ""
}

// IP6 is the n-th address of the IPv6 subnet (1 is the gateway); CIDR6 the
// same with the subnet's length.
func (e *Env) IP6(n int) netip.Addr {
	a := e.Subnet6.Addr()
	for i := 0; i < n; i++ {
		a = a.Next()
	}
	return a
}

// CIDR6 is IP6(n) with the IPv6 subnet's prefix length.
func (e *Env) CIDR6(n int) string { return netip.PrefixFrom(e.IP6(n), e.Subnet6.Bits()).String() }

// AddDualPod makes dual-stack pod name with addresses IP(n) and IP6(n)
// through the API, in a namespace made beforehand with IPv6 on (so the pod
// sends neighbour discovery and the like). The daemon did not make that
// namespace and leaves it on `pod del`; the cleanup removes it.
func (e *Env) AddDualPod(name string, n int) api.Pod {
	e.T.Helper()
	if _, err := netns.CreateNamed(e.Netns(name)); err != nil {
		e.T.Fatal(err)
	}
	p, err := e.Client.AddPod(context.Background(), api.PodSpec{Name: name, IP: e.CIDR(n), IPs: []string{e.CIDR6(n)}})
	if err != nil {
		e.T.Fatal(err)
	}
	return p
}

// Netns is the namespace of pod name.
func (e *Env) Netns(name string) string { return e.Prefix + name }

// IP is the n-th host address of the subnet (1 is the gateway).
func (e *Env) IP(n int) netip.Addr {
	a := e.Subnet.Addr()
	for i := 0; i < n; i++ {
		a = a.Next()
	}
	return a
}

// CIDR is IP(n) with the subnet's prefix length.
func (e *Env) CIDR(n int) string { return netip.PrefixFrom(e.IP(n), e.Subnet.Bits()).String() }

// AddQuietPod makes pod name with address IP(n) through the API, in a
// namespace made beforehand with IPv6 off, so the pod sends nothing
// unasked. The daemon did not make that namespace and leaves it on `pod
// del`; the cleanup removes it.
func (e *Env) AddQuietPod(name string, n int) api.Pod {
	e.T.Helper()
	return e.AddQuietPodContext(context.Background(), name, n)
}

// AddQuietPodContext is AddQuietPod with ctx for the call that adds the
// pod. A ctx that carries pprof labels (pprof.Do) makes it add the pod
// from the calling goroutine through the daemon in this process (Start)
// instead of the API, whose handler goroutine would not carry them: the
// goroutines the daemon starts for the pod, its readers, inherit the
// labels, so that a CPU profile of the test splits the daemon's time by
// pod.
func (e *Env) AddQuietPodContext(ctx context.Context, name string, n int) api.Pod {
	e.T.Helper()
	ns := e.Netns(name)
	if _, err := netns.CreateNamed(ns); err != nil {
		e.T.Fatal(err)
	}
	if err := podnet.DisableIPv6(ns); err != nil {
		e.T.Fatal(err)
	}
	labelled := false
	pprof.ForLabels(ctx, func(string, string) bool { labelled = true; return false })
	spec := api.PodSpec{Name: name, IP: e.CIDR(n)}
	var p api.Pod
	var err error
	if e.d != nil && (e.NodeNS != "" || labelled) {
		// From the node: the pod's TAP is made where the daemon runs
		// before it moves into the pod, so never in the real host.
		err = e.InNode(func() (err error) {
			p, err = e.d.AddPod(ctx, spec)
			return err
		})
	} else {
		p, err = e.Client.AddPod(ctx, spec)
	}
	if err != nil {
		e.T.Fatal(err)
	}
	return p
}

// Namespaces lists the namespaces carrying the prefix.
func (e *Env) Namespaces() []string { return testenv.Namespaces(e.Prefix) }

// MustPing pings IP(n) count times from pod from's namespace and fails t
// unless every request is answered.
func (e *Env) MustPing(t testing.TB, from string, n, count int) podnet.PingResult {
	t.Helper()
	r, err := podnet.Ping(context.Background(), e.Netns(from), e.IP(n), podnet.PingOptions{Count: count, Interval: 10 * time.Millisecond, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("ping %s -> %s: %v", from, e.IP(n), err)
	}
	if r.Received() != count {
		t.Fatalf("ping %s -> %s: %s", from, e.IP(n), r)
	}
	return r
}

// Ports is the daemon's port listing by port name.
func (e *Env) Ports(t testing.TB) map[string]api.Port {
	t.Helper()
	ports, err := e.Client.Ports(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string]api.Port)
	for _, p := range ports {
		m[p.Name] = p
	}
	return m
}

// FDB is the daemon's forwarding table by MAC.
func (e *Env) FDB(t testing.TB) map[fdb.MAC]api.FDBEntry {
	t.Helper()
	ents, err := e.Client.FDB(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[fdb.MAC]api.FDBEntry)
	for _, x := range ents {
		m[x.MAC] = x
	}
	return m
}

// MAC is pod p's MAC address.
func MAC(t testing.TB, p api.Pod) fdb.MAC {
	t.Helper()
	m, err := fdb.ParseMAC(p.MAC)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// ReadModes runs body, as a subtest on an Env of its own, once for each way
// the daemon can read its TAPs: a reader goroutine per queue parked in the
// netpoller (spin 0, the default), and one poller for every queue (spin >
// 0). After body it checks that the mode asked for is the mode that carried
// the traffic: every live port read by the poller, or none.
func ReadModes(t *testing.T, body func(t *testing.T, e *Env)) {
	for _, m := range []struct {
		name string
		spin time.Duration
	}{{"netpoller", 0}, {"poller", 50 * time.Microsecond}} {
		t.Run(m.name, func(t *testing.T) {
			e := New(t)
			e.Cfg.Spin = m.spin
			body(t, e)
			if d := e.Daemon(); d != nil {
				polled, live := d.PolledPorts()
				if want := map[bool]int{true: live, false: 0}[m.spin > 0]; live == 0 || polled != want {
					t.Errorf("spin %v: %d of %d live ports polled, want %d", m.spin, polled, live, want)
				}
			}
		})
	}
}
