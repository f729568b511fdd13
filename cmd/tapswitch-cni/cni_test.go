package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/cmd/internal/nodetest"
	"github.com/tapswitch/tapswitch/internal/podnet"
	"github.com/tapswitch/tapswitch/netns"
)

// binDir holds the plugin built once for the package's tests, as
// "tapswitch" (its config type), and host-local: from TAPSWITCH_CNI_BIN
// (`make test` builds it there), else built from the module's
// containernetworking/plugins.
var binDir, buildErr = "", error(nil)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tswcni")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	buildErr = build(dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func build(dir string) error {
	out, err := exec.Command("go", "build", "-o", filepath.Join(dir, Plugin), ".").CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	if src := os.Getenv("TAPSWITCH_CNI_BIN"); src != "" {
		if _, err := os.Stat(filepath.Join(src, "host-local")); err == nil {
			return os.Symlink(filepath.Join(src, "host-local"), filepath.Join(dir, "host-local"))
		}
	}
	out, err = exec.Command("go", "build", "-o", filepath.Join(dir, "host-local"),
		"github.com/containernetworking/plugins/plugins/ipam/host-local").CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build host-local: %v\n%s", err, out)
	}
	return nil
}

// runtimeEnv plays the container runtime for one test: it runs the plugin
// binary with the CNI_* environment and a network config on stdin.
type runtimeEnv struct {
	t       *testing.T
	e       *nodetest.Env
	network string
	dataDir string // host-local's leases
	ipam    map[string]any
}

func newRuntime(t *testing.T) *runtimeEnv {
	t.Helper()
	nodetest.RequireRoot(t) // before the build's error: -short skips these
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	e := nodetest.New(t)
	return &runtimeEnv{t: t, e: e, network: "tsw-" + strings.TrimSuffix(e.Prefix, "-"), dataDir: t.TempDir()}
}

// conf is the network config; extra keys are merged in.
func (r *runtimeEnv) conf(extra map[string]any) []byte {
	m := map[string]any{
		"cniVersion": "1.1.0", "name": r.network, "type": Plugin, "socket": r.e.Cfg.Socket,
		"ipam": map[string]any{"type": "host-local", "dataDir": r.dataDir},
	}
	if r.ipam != nil {
		m["ipam"] = r.ipam
	}
	for k, v := range extra {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return b
}

type call struct {
	cmd, id, netns, ifname string
	stdin                  []byte
}

// run executes the plugin; a non-zero exit comes back as the CNI error it
// printed.
func (r *runtimeEnv) run(c call) ([]byte, *types.Error) {
	r.t.Helper()
	if c.ifname == "" && c.cmd != "GC" && c.cmd != "STATUS" && c.cmd != "VERSION" {
		c.ifname = "eth0"
	}
	cmd := exec.Command(filepath.Join(binDir, Plugin))
	cmd.Env = append(os.Environ(), "CNI_COMMAND="+c.cmd, "CNI_CONTAINERID="+c.id, "CNI_NETNS="+c.netns,
		"CNI_IFNAME="+c.ifname, "CNI_PATH="+binDir)
	cmd.Stdin = bytes.NewReader(c.stdin)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		var ce types.Error
		if jerr := json.Unmarshal(out.Bytes(), &ce); jerr != nil {
			r.t.Fatalf("%s %s: exit %d, stdout %q is not a CNI error: %v; stderr %s", c.cmd, c.id, ee.ExitCode(), out.String(), jerr, stderr.String())
		}
		return out.Bytes(), &ce
	}
	if err != nil {
		r.t.Fatalf("%s: %v", c.cmd, err)
	}
	return out.Bytes(), nil
}

func (r *runtimeEnv) mustRun(c call) []byte {
	r.t.Helper()
	out, cerr := r.run(c)
	if cerr != nil {
		r.t.Fatalf("%s %s: CNI error %d: %s (%s)", c.cmd, c.id, cerr.Code, cerr.Msg, cerr.Details)
	}
	return out
}

// add runs ADD and checks the result's shape.
func (r *runtimeEnv) add(id, netns string) *types100.Result {
	r.t.Helper()
	out := r.mustRun(call{cmd: "ADD", id: id, netns: netns, stdin: r.conf(nil)})
	res, err := types100.NewResult(out)
	if err != nil {
		r.t.Fatalf("ADD %s: result %s: %v", id, out, err)
	}
	rs := res.(*types100.Result)
	if rs.CNIVersion != "1.1.0" {
		r.t.Errorf("ADD %s: cniVersion %q", id, rs.CNIVersion)
	}
	if len(rs.Interfaces) != 2 || rs.Interfaces[1].Name != "eth0" || rs.Interfaces[1].Sandbox != netns || rs.Interfaces[1].Mac == "" ||
		rs.Interfaces[0].Name != r.e.GwIf || rs.Interfaces[0].Sandbox != "" {
		r.t.Errorf("ADD %s: interfaces %s", id, out)
	}
	want := 1 // IPv4; and IPv6 on a dual-stack node (TestDualStack checks it)
	if r.e.Subnet6.IsValid() {
		want = 2
	}
	if len(rs.IPs) != want || rs.IPs[0].Interface == nil || *rs.IPs[0].Interface != 1 {
		r.t.Fatalf("ADD %s: ips %s", id, out)
	}
	a, ok := netip.AddrFromSlice(rs.IPs[0].Address.IP.To4())
	ones, _ := rs.IPs[0].Address.Mask.Size()
	if !ok || !r.e.Subnet.Contains(a) || ones != r.e.Subnet.Bits() || a == r.e.GwAddr {
		r.t.Errorf("ADD %s: address %s outside %s or the gateway", id, &rs.IPs[0].Address, r.e.Subnet)
	}
	if !rs.IPs[0].Gateway.Equal(r.e.GwAddr.AsSlice()) {
		r.t.Errorf("ADD %s: gateway %s, want %s", id, rs.IPs[0].Gateway, r.e.GwAddr)
	}
	if len(rs.Routes) == 0 || rs.Routes[0].Dst.String() != "0.0.0.0/0" || !rs.Routes[0].GW.Equal(r.e.GwAddr.AsSlice()) {
		r.t.Errorf("ADD %s: routes %s", id, out)
	}
	return rs
}

// withPrev is the config CHECK gets: the ADD result as prevResult.
func (r *runtimeEnv) withPrev(res *types100.Result) []byte {
	b, _ := json.Marshal(res)
	var m map[string]any
	json.Unmarshal(b, &m)
	return r.conf(map[string]any{"prevResult": m})
}

// netns makes a named namespace (IPv6 off, so the pod stays quiet) as a
// runtime does, and returns its path. The cleanup's sweep removes it.
func (r *runtimeEnv) netns(name string) string {
	r.t.Helper()
	ns := r.e.Netns(name)
	if _, err := netns.CreateNamed(ns); err != nil {
		r.t.Fatal(err)
	}
	if err := podnet.DisableIPv6(ns); err != nil {
		r.t.Fatal(err)
	}
	return netns.PathOf(ns)
}

func addrOf(res *types100.Result) netip.Addr {
	a, _ := netip.AddrFromSlice(res.IPs[0].Address.IP.To4())
	return a
}

func (r *runtimeEnv) ping(netns string, dst netip.Addr) {
	r.t.Helper()
	res, err := podnet.Ping(context.Background(), netns, dst, podnet.PingOptions{Count: 3, Interval: 20 * time.Millisecond, Timeout: 2 * time.Second})
	if err != nil {
		r.t.Fatalf("ping %s from %s: %v", dst, netns, err)
	}
	if res.Received() != 3 {
		r.t.Fatalf("ping %s from %s: %s", dst, netns, res)
	}
}

// leases lists host-local's reserved addresses.
func (r *runtimeEnv) leases() []string {
	var out []string
	ents, _ := os.ReadDir(filepath.Join(r.dataDir, r.network))
	for _, en := range ents {
		if _, err := netip.ParseAddr(en.Name()); err == nil {
			out = append(out, en.Name())
		}
	}
	return out
}

// wantNoAttachments fails the test if any pod or host-local lease is left:
// what a DEL (or a refused ADD) must leave behind.
func (r *runtimeEnv) wantNoAttachments() {
	r.t.Helper()
	if ps := r.pods(); len(ps) != 0 {
		r.t.Errorf("pods left: %v", ps)
	}
	if l := r.leases(); len(l) != 0 {
		r.t.Errorf("leases left: %v", l)
	}
}

func (r *runtimeEnv) pods() map[string]api.Pod {
	r.t.Helper()
	ps, err := r.e.Client.Pods(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	m := make(map[string]api.Pod)
	for _, p := range ps {
		m[p.ContainerID] = p
	}
	return m
}

func hasLink(t *testing.T, nsPath, name string) bool {
	t.Helper()
	found := false
	err := netns.FromPath(nsPath).Run(func() error {
		_, err := netlink.LinkByName(name)
		found = err == nil
		return nil
	})

	if err != nil {
		t.Fatal(err)
	}
	return found
}

const (
	idA = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2"
	idB = "b1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2"
	idC = "c1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2"
)

// TestAddCheckDel is the runtime's life cycle of two pods: ADD gives each
// a TAP with an address from host-local and a port; they reach the gateway
// and each other; CHECK passes; DEL removes port, TAP and lease, leaves the
// runtime's namespace, and a second DEL is a no-op.
func TestAddCheckDel(t *testing.T) {
	r := newRuntime(t)
	r.e.Start()
	nsA, nsB := r.netns("a"), r.netns("b")
	t0 := time.Now()
	resA := r.add(idA, nsA)
	t.Logf("ADD took %v", time.Since(t0))
	resB := r.add(idB, nsB)
	if addrOf(resA) == addrOf(resB) {
		t.Fatalf("both pods got %s", addrOf(resA))
	}
	p := r.pods()[idA]
	if p.Name != "cni-a1b2c3d4e5f6" || p.State != api.PodUp || p.Netns != nsA || p.Network != r.network || p.IfName != "eth0" {
		t.Errorf("daemon's pod: %+v", p)
	}
	if len(r.leases()) != 2 {
		t.Errorf("leases %v, want 2", r.leases())
	}

	r.ping(nsA, r.e.GwAddr)
	r.ping(nsA, addrOf(resB))
	r.ping(nsB, addrOf(resA))

	r.mustRun(call{cmd: "CHECK", id: idA, netns: nsA, stdin: r.withPrev(resA)})
	// CHECK with another pod's result fails.
	if _, cerr := r.run(call{cmd: "CHECK", id: idA, netns: nsA, stdin: r.withPrev(resB)}); cerr == nil {
		t.Error("CHECK with the wrong prevResult passed")
	}

	for i := range 2 {
		t0 := time.Now()
		r.mustRun(call{cmd: "DEL", id: idA, netns: nsA, stdin: r.conf(nil)})
		t.Logf("DEL %d took %v", i+1, time.Since(t0))
	}
	if _, ok := r.pods()[idA]; ok {
		t.Error("pod still on the switch after DEL")
	}
	if hasLink(t, nsA, "eth0") {
		t.Error("TAP still in the namespace after DEL")
	}
	if _, err := os.Stat(nsA); err != nil {
		t.Errorf("DEL removed the runtime's namespace: %v", err)
	}
	if l := r.leases(); len(l) != 1 || l[0] != addrOf(resB).String() {
		t.Errorf("leases after DEL %v, want only %s", l, addrOf(resB))
	}
	_, cerr := r.run(call{cmd: "CHECK", id: idA, netns: nsA, stdin: r.withPrev(resA)})
	if cerr == nil || cerr.Code != types.ErrUnknownContainer {
		t.Errorf("CHECK after DEL: %v, want code %d", cerr, types.ErrUnknownContainer)
	}
	r.ping(nsB, r.e.GwAddr)
}

// TestSecondInterface attaches a second TAP (net1) to a pod: a separate
// port and address, found again by DEL under its own name.
func TestSecondInterface(t *testing.T) {
	r := newRuntime(t)
	r.e.Start()
	ns := r.netns("a")
	r.add(idA, ns)
	out := r.mustRun(call{cmd: "ADD", id: idA, netns: ns, ifname: "net1", stdin: r.conf(nil)})
	if !strings.Contains(string(out), `"net1"`) {
		t.Errorf("ADD net1: %s", out)
	}
	if !hasLink(t, ns, "net1") || !hasLink(t, ns, "eth0") {
		t.Fatal("missing eth0 or net1")
	}
	if strings.Contains(string(out), "0.0.0.0/0") {
		t.Errorf("ADD net1 reports a second default route: %s", out)
	}
	r.mustRun(call{cmd: "DEL", id: idA, netns: ns, ifname: "net1", stdin: r.conf(nil)})
	if hasLink(t, ns, "net1") || !hasLink(t, ns, "eth0") {
		t.Error("DEL net1 did not remove exactly net1")
	}
	// ADD of an attachment that exists is refused, and changes nothing.
	if _, cerr := r.run(call{cmd: "ADD", id: idA, netns: ns, stdin: r.conf(nil)}); cerr == nil {
		t.Error("second ADD of eth0 passed")
	} else if cerr.Code != ErrAlreadyAttached || !strings.Contains(cerr.Details, "already attached as pod") {
		t.Errorf("second ADD of eth0: code %d %q (%s), want code %d (documented in docs/cni.md)", cerr.Code, cerr.Msg, cerr.Details, ErrAlreadyAttached)
	}
	if len(r.leases()) != 1 {
		t.Errorf("leases %v, want 1", r.leases())
	}
}

// TestDelAfterNetnsGone: the runtime removed the namespace before DEL, both
// a named one and a /proc/PID/ns/net whose process exited. DEL succeeds,
// the port leaves the switch and the lease is released.
func TestDelAfterNetnsGone(t *testing.T) {
	r := newRuntime(t)
	r.e.Start()
	ns := r.netns("a")
	r.add(idA, ns)
	if err := netns.DeleteNamed(r.e.Netns("a")); err != nil {
		t.Fatal(err)
	}

	holder := exec.Command("sleep", "60")
	holder.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer holder.Process.Kill()
	procNS := fmt.Sprintf("/proc/%d/ns/net", holder.Process.Pid)
	r.add(idB, procNS)
	r.ping(procNS, r.e.GwAddr)
	holder.Process.Kill()
	holder.Wait()

	r.mustRun(call{cmd: "DEL", id: idA, netns: ns, stdin: r.conf(nil)})
	r.mustRun(call{cmd: "DEL", id: idB, netns: procNS, stdin: r.conf(nil)})
	r.mustRun(call{cmd: "DEL", id: idB, stdin: r.conf(nil)}) // CNI_NETNS may be empty on DEL
	r.wantNoAttachments()
}

// TestDaemonDownAndRestart: with the daemon stopped STATUS fails with
// "plugin not available" (50) and DEL with "try again later" (11), keeping
// the lease; after a restart the pod is re-attached from the state file,
// CHECK passes and DEL completes.
func TestDaemonDownAndRestart(t *testing.T) {
	r := newRuntime(t)
	r.e.Start()
	r.mustRun(call{cmd: "STATUS", stdin: r.conf(nil)})
	ns := r.netns("a")
	res := r.add(idA, ns)

	r.e.Stop(false)
	_, cerr := r.run(call{cmd: "STATUS", stdin: r.conf(nil)})
	if cerr == nil || cerr.Code != types.ErrPluginNotAvailable {
		t.Fatalf("STATUS with the daemon down: %v, want code %d", cerr, types.ErrPluginNotAvailable)
	}
	_, cerr = r.run(call{cmd: "DEL", id: idA, netns: ns, stdin: r.conf(nil)})
	if cerr == nil || cerr.Code != types.ErrTryAgainLater {
		t.Fatalf("DEL with the daemon down: %v, want code %d", cerr, types.ErrTryAgainLater)
	}
	_, cerr = r.run(call{cmd: "ADD", id: idB, netns: r.netns("b"), stdin: r.conf(nil)})
	if cerr == nil || cerr.Code != types.ErrTryAgainLater {
		t.Fatalf("ADD with the daemon down: %v, want code %d", cerr, types.ErrTryAgainLater)
	}
	if len(r.leases()) != 1 {
		t.Errorf("leases %v, want the pod's", r.leases())
	}

	r.e.Start()
	r.mustRun(call{cmd: "STATUS", stdin: r.conf(nil)})
	r.mustRun(call{cmd: "CHECK", id: idA, netns: ns, stdin: r.withPrev(res)})
	r.ping(ns, r.e.GwAddr)
	r.mustRun(call{cmd: "DEL", id: idA, netns: ns, stdin: r.conf(nil)})
	r.wantNoAttachments()
}

// TestGC: GC keeps the listed attachments and this network's only; the
// others lose port, TAP and lease.
func TestGC(t *testing.T) {
	r := newRuntime(t)
	r.e.Start()
	nsA, nsB, nsC := r.netns("a"), r.netns("b"), r.netns("c")
	resA := r.add(idA, nsA)
	r.add(idB, nsB)
	// A pod of another network on the same switch.
	other := *r
	other.network = r.network + "-x"
	// With explicit ranges, apart from the first network's addresses.
	other.ipam = map[string]any{"type": "host-local", "dataDir": r.dataDir, "ranges": []any{[]any{map[string]any{
		"subnet": r.e.Subnet.String(), "rangeStart": r.e.IP(100).String(), "gateway": r.e.GwAddr.String()}}}}
	other.add(idC, nsC)
	// And one made with the CLI.
	r.e.AddQuietPod("cli", 200)

	valid := []map[string]string{{"containerID": idA, "ifname": "eth0"}}
	r.mustRun(call{cmd: "GC", stdin: r.conf(map[string]any{"cni.dev/valid-attachments": valid})})
	ps := r.pods()
	if _, ok := ps[idB]; ok {
		t.Error("GC kept an attachment the runtime did not list")
	}
	if _, ok := ps[idA]; !ok {
		t.Error("GC removed a listed attachment")
	}
	if _, ok := ps[idC]; !ok {
		t.Error("GC removed another network's attachment")
	}
	if _, ok := ps[""]; !ok {
		t.Error("GC removed a pod made with the CLI")
	}
	if hasLink(t, nsB, "eth0") {
		t.Error("GC left the TAP")
	}
	if l := r.leases(); len(l) != 1 || l[0] != addrOf(resA).String() {
		t.Errorf("leases after GC %v, want only %s", l, addrOf(resA))
	}
	r.ping(nsA, r.e.GwAddr)
}

// TestBadAttachments: the daemon refuses the host's own namespace, a
// relative or missing path; nothing is left behind, leases included.
func TestBadAttachments(t *testing.T) {
	r := newRuntime(t)
	r.e.Start()
	for _, ns := range []string{"/proc/self/ns/net", "/proc/1/ns/net", "relative/ns", "/var/run/netns/" + r.e.Prefix + "missing"} {
		_, cerr := r.run(call{cmd: "ADD", id: idA, netns: ns, stdin: r.conf(nil)})
		if cerr == nil {
			t.Errorf("ADD in %s passed", ns)
			continue
		}
		// Refused by checkPodNetns, not by whatever broke further on.
		if cerr.Code != types.ErrInvalidNetNS {
			t.Errorf("ADD in %s: %d %s %s, want code %d", ns, cerr.Code, cerr.Msg, cerr.Details, types.ErrInvalidNetNS)
		}
	}
	r.wantNoAttachments()
	if _, err := os.Stat("/var/run/netns/" + r.e.Prefix + "missing"); err == nil {
		t.Error("a missing namespace was created")
	}
}

// TestVersion needs no root: VERSION and a bare run.
func TestVersion(t *testing.T) {
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	r := &runtimeEnv{t: t, e: &nodetest.Env{}, network: "v"}
	out := r.mustRun(call{cmd: "VERSION", stdin: []byte(`{"cniVersion":"1.1.0"}`)})
	var v struct {
		CNIVersion        string   `json:"cniVersion"`
		SupportedVersions []string `json:"supportedVersions"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("VERSION: %s: %v", out, err)
	}
	if !strings.Contains(strings.Join(v.SupportedVersions, ","), "1.1.0") {
		t.Errorf("VERSION: %s", out)
	}
	// An unknown command is a CNI error, not a crash.
	if _, cerr := r.run(call{cmd: "FOO", stdin: r.conf(nil)}); cerr == nil || cerr.Code != types.ErrInvalidEnvironmentVariables {
		t.Errorf("CNI_COMMAND=FOO: %v", cerr)
	}
}

func TestPodName(t *testing.T) {
	for _, tc := range []struct{ id, ifname, want string }{
		{idA, "eth0", "cni-a1b2c3d4e5f6"},
		{idA, "net1", "cni-a1b2c3d4e5f6-net1"},
		{"ABCDEF123456789", "eth0", "cni-abcdef123456"},
		{"c1", "eth0", "cni-c1"},
		{"pod_1.x", "eth0", "cni-" + hash("pod_1.x")},
		{idA, "Net_1", "cni-a1b2c3d4e5f6-" + hash("Net_1")[:8]},
	} {
		got := podName(tc.id, tc.ifname)
		if got != tc.want {
			t.Errorf("podName(%q, %q) = %q, want %q", tc.id, tc.ifname, got, tc.want)
		}
		if !isLabel(got) || len(got) > 63 {
			t.Errorf("podName(%q, %q) = %q: not a DNS label", tc.id, tc.ifname, got)
		}
	}
}

// netns6 makes a named namespace with IPv6 on, for a dual-stack pod.
func (r *runtimeEnv) netns6(name string) string {
	r.t.Helper()
	if _, err := netns.CreateNamed(r.e.Netns(name)); err != nil {
		r.t.Fatal(err)
	}
	return netns.PathOf(r.e.Netns(name))
}

// oneAddress has host-local hand out IP(n) alone, so that a released
// address is the next one given.
func (r *runtimeEnv) oneAddress(n int) {
	r.ipam = map[string]any{"type": "host-local", "dataDir": r.dataDir, "ranges": []any{[]any{map[string]any{
		"subnet": r.e.Subnet.String(), "rangeStart": r.e.IP(n).String(), "rangeEnd": r.e.IP(n).String(), "gateway": r.e.GwAddr.String()}}}}
}

// TestAddReclaimsGonePod: a pod whose namespace the runtime deleted while
// the daemon was stopped is gone after the restart; host-local, having
// lost its lease (its dataDir on a tmpfs across a reboot), hands the same
// address to the next pod, whose ADD succeeds: the daemon reclaims the
// address from the gone pod.
func TestAddReclaimsGonePod(t *testing.T) {
	r := newRuntime(t)
	r.oneAddress(7)
	r.e.Start()
	resA := r.add(idA, r.netns("a"))
	r.e.Stop(false)
	if err := netns.DeleteNamed(r.e.Netns("a")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(r.dataDir, r.network, addrOf(resA).String())); err != nil {
		t.Fatal(err)
	}
	r.e.Start()
	if p := r.pods()[idA]; p.State != api.PodGone {
		t.Fatalf("pod of the deleted namespace: %+v, want gone", p)
	}
	nsB := r.netns("b")
	resB := r.add(idB, nsB)
	if addrOf(resB) != addrOf(resA) {
		t.Fatalf("host-local gave %s, the test wants the gone pod's %s", addrOf(resB), addrOf(resA))
	}
	if _, ok := r.pods()[idA]; ok {
		t.Error("the gone pod is still on the switch")
	}
	r.ping(nsB, r.e.GwAddr)
	r.mustRun(call{cmd: "DEL", id: idA, stdin: r.conf(nil)}) // the runtime's late DEL of the old one
	if p, ok := r.pods()[idB]; !ok || p.State != api.PodUp {
		t.Errorf("the late DEL of the gone pod touched the new one: %+v", p)
	}
	r.mustRun(call{cmd: "DEL", id: idB, netns: nsB, stdin: r.conf(nil)})
	r.wantNoAttachments()
}

// TestAddAgainAfterGone: the runtime adds an attachment again (same
// container and interface) whose namespace vanished while the daemon was
// down: the gone pod and its lease are freed and the ADD succeeds.
func TestAddAgainAfterGone(t *testing.T) {
	r := newRuntime(t)
	r.e.Start()
	r.add(idA, r.netns("a"))
	r.e.Stop(false)
	if err := netns.DeleteNamed(r.e.Netns("a")); err != nil {
		t.Fatal(err)
	}
	r.e.Start()
	ns := r.netns("a")
	r.add(idA, ns)
	if p := r.pods()[idA]; p.State != api.PodUp {
		t.Fatalf("re-added pod: %+v", p)
	}
	if l := r.leases(); len(l) != 1 {
		t.Errorf("leases %v, want the new one alone", l)
	}
	r.ping(ns, r.e.GwAddr)
}

// TestGCRemovesGonePods: GC removes this network's gone pods, listed or
// not; a listed one keeps its lease for the runtime's DEL, which then
// succeeds.
func TestGCRemovesGonePods(t *testing.T) {
	r := newRuntime(t)
	r.e.Start()
	r.add(idA, r.netns("a"))
	nsB := r.netns("b")
	r.add(idB, nsB)
	r.e.Stop(false)
	if err := netns.DeleteNamed(r.e.Netns("a")); err != nil {
		t.Fatal(err)
	}
	r.e.Start()
	valid := []map[string]string{{"containerID": idA, "ifname": "eth0"}, {"containerID": idB, "ifname": "eth0"}}
	r.mustRun(call{cmd: "GC", stdin: r.conf(map[string]any{"cni.dev/valid-attachments": valid})})
	ps := r.pods()
	if _, ok := ps[idA]; ok {
		t.Error("GC kept a gone pod")
	}
	if p, ok := ps[idB]; !ok || p.State != api.PodUp {
		t.Errorf("GC removed a live listed pod: %+v", p)
	}
	if l := r.leases(); len(l) != 2 {
		t.Errorf("leases after GC %v, want both (the runtime still lists the gone one)", l)
	}
	r.mustRun(call{cmd: "DEL", id: idA, stdin: r.conf(nil)})
	if l := r.leases(); len(l) != 1 {
		t.Errorf("leases after the DEL %v, want one", l)
	}
	r.ping(nsB, r.e.GwAddr)
}

// TestDualStack: on a dual-stack node ADD gives a pod one address of each
// family, from a host-local ipam the plugin fills with both subnets, or
// from a conflist with both range sets as cbr0's host-local had: the
// result has both with their gateways and both default routes, the
// namespace has both addresses and routes, IPv6 works pod to pod and to
// the gateway, CHECK passes, DEL releases both leases.
func TestDualStack(t *testing.T) {
	r := newRuntime(t)
	r.e.DualStack()
	r.e.Start()
	nsA, nsB := r.netns6("a"), r.netns6("b")
	check := func(res *types100.Result, ns string) (v4, v6 netip.Addr) {
		t.Helper()
		if len(res.IPs) != 2 {
			t.Fatalf("ips %+v, want one of each family", res.IPs)
		}
		ip6 := res.IPs[1]
		v4 = addrOf(res)
		v6, _ = netip.AddrFromSlice(ip6.Address.IP)
		ones, _ := ip6.Address.Mask.Size()
		if !v6.Is6() || !r.e.Subnet6.Contains(v6) || ones != 64 || v6 == r.e.GwAddr6 || !ip6.Gateway.Equal(r.e.GwAddr6.AsSlice()) ||
			ip6.Interface == nil || *ip6.Interface != 1 {
			t.Errorf("IPv6 address %+v: want one in %s with gateway %s on interface 1", ip6, r.e.Subnet6, r.e.GwAddr6)
		}
		def6 := false
		for _, rt := range res.Routes {
			if rt.Dst.String() == "::/0" && rt.GW.Equal(r.e.GwAddr6.AsSlice()) {
				def6 = true
			}
		}
		if !def6 {
			t.Errorf("routes %v: no ::/0 via %s", res.Routes, r.e.GwAddr6)
		}
		err := netns.FromPath(ns).Run(func() error {
			l, err := netlink.LinkByName("eth0")
			if err != nil {
				return err
			}
			as, _ := netlink.AddrList(l, netlink.FAMILY_V6)
			has := false
			for _, a := range as {
				if a.IP.Equal(v6.AsSlice()) {
					has = true
				}
			}
			if !has {
				t.Errorf("%s: eth0 has no %s: %v", ns, v6, as)
			}
			rts, _ := netlink.RouteList(l, netlink.FAMILY_V6)
			for _, rt := range rts {
				if (rt.Dst == nil || isZeroMask(rt.Dst.Mask)) && rt.Gw.Equal(r.e.GwAddr6.AsSlice()) {
					return nil
				}
			}
			t.Errorf("%s: no IPv6 default route via %s: %v", ns, r.e.GwAddr6, rts)
			return nil
		})

		if err != nil {
			t.Fatal(err)
		}
		return v4, v6
	}
	resA := r.add(idA, nsA)
	_, a6 := check(resA, nsA)
	// The conflist as cbr0's dual-stack host-local had it.
	r.ipam = map[string]any{"type": "host-local", "dataDir": r.dataDir, "ranges": []any{
		[]any{map[string]any{"subnet": r.e.Subnet.String(), "gateway": r.e.GwAddr.String()}},
		[]any{map[string]any{"subnet": r.e.Subnet6.String(), "gateway": r.e.GwAddr6.String()}},
	}}
	resB := r.add(idB, nsB)
	_, b6 := check(resB, nsB)
	if a6 == b6 {
		t.Fatalf("both pods got %s", a6)
	}
	if p := r.pods()[idA]; len(p.IPs) != 2 || p.IPs[1] != netip.PrefixFrom(a6, 64).String() {
		t.Errorf("daemon's pod: %+v", p)
	}
	if l := r.leases(); len(l) != 4 {
		t.Errorf("leases %v, want 4", l)
	}
	r.ping(nsA, b6)
	r.ping(nsB, a6)
	r.ping(nsA, r.e.GwAddr6)
	r.ping(nsA, addrOf(resB))
	r.mustRun(call{cmd: "CHECK", id: idA, netns: nsA, stdin: r.withPrev(resA)})
	r.mustRun(call{cmd: "CHECK", id: idB, netns: nsB, stdin: r.withPrev(resB)})
	// A prevResult without the IPv6 address fails CHECK.
	resA.IPs = resA.IPs[:1]
	if _, cerr := r.run(call{cmd: "CHECK", id: idA, netns: nsA, stdin: r.withPrev(resA)}); cerr == nil {
		t.Error("CHECK passed without the pod's IPv6 address in prevResult")
	}
	r.mustRun(call{cmd: "DEL", id: idA, netns: nsA, stdin: r.conf(nil)})
	r.mustRun(call{cmd: "DEL", id: idB, netns: nsB, stdin: r.conf(nil)})
	r.wantNoAttachments()
}
