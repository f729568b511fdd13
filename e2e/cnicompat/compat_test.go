package cnicompat

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

const (
	root     = "../.."
	conflist = root + "/deploy/10-tapswitch.conflist"
)

// oldConflist is the conflist as shipped before: cniVersion 1.1.0, which
// this library hands to every plugin, which then answers in 1.1.0.
func oldConflist(t *testing.T, shipped []byte) []byte {
	var m map[string]any
	if err := json.Unmarshal(shipped, &m); err != nil {
		t.Fatal(err)
	}
	m["cniVersion"] = "1.1.0"
	delete(m, "cniVersions")
	b, _ := json.Marshal(m)
	return b
}

// TestConflistVersion: the version this library takes from the shipped
// conflist is one whose results it can read; the old conflist's is not.
func TestConflistVersion(t *testing.T) {
	shipped, err := os.ReadFile(conflist)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		conf   []byte
		wantOK bool
	}{{"shipped", shipped, true}, {"old 1.1.0", oldConflist(t, shipped), false}} {
		list, err := libcni.ConfListFromBytes(c.conf)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		readable := slices.Contains(version.All.SupportedVersions(), list.CNIVersion)
		if readable != c.wantOK {
			t.Errorf("%s: cniVersion %q readable by libcni v1.1.1 (%v): %v, want %v", c.name, list.CNIVersion, version.All.SupportedVersions(), readable, c.wantOK)
		}
	}
}

// TestAddThroughOldLibcni runs the shipped conflist, with only its paths
// changed, through this library's AddNetworkList and DelNetworkList against
// the real daemon (`tapswitch run`) and plugins, as containerd 1.6 does; and
// the old conflist, whose ADD this library must refuse, leaving nothing
// behind after the DEL that follows, as containerd sends it.
func TestAddThroughOldLibcni(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping a root test that runs the daemon")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs the tapswitch daemon, which makes TAPs and namespaces (run `sudo go test`)")
	}
	n := newNode(t)
	shipped, err := os.ReadFile(conflist)
	if err != nil {
		t.Fatal(err)
	}

	res := n.add(t, n.layout(t, shipped), "ok", nil)
	r, err := types100.GetResult(res)
	if err != nil {
		t.Fatal(err)
	}
	if r.CNIVersion != "1.0.0" || len(r.IPs) != 1 || !n.subnet.Contains(r.IPs[0].Address.IP) {
		t.Errorf("result %s: want version 1.0.0 and one address in %s", mustJSON(r), n.subnet)
	}
	if pods := n.pods(t); len(pods) != 1 {
		t.Errorf("pods after ADD: %v", pods)
	}
	n.del(t, n.layout(t, shipped), "ok")
	n.empty(t)

	// The same pod through the old conflist: the plugin and host-local did
	// their part, but this library cannot read the 1.1.0 result.
	var addErr error
	n.add(t, n.layout(t, oldConflist(t, shipped)), "old", &addErr)
	if addErr == nil || !strings.Contains(addErr.Error(), `unsupported CNI result version "1.1.0"`) {
		t.Errorf("ADD with cniVersion 1.1.0: %v, want unsupported CNI result version", addErr)
	}
	n.del(t, n.layout(t, oldConflist(t, shipped)), "old")
	n.empty(t)
}

// node is the daemon and plugins built from this repository, run with a
// config of the test's own: a gateway name, free subnet, socket and state
// directory no one else uses, and its nat rules off (nothing touches the
// host's firewall).
type node struct {
	dir, bin, prefix, gw string
	subnet               *net.IPNet
	cni                  *libcni.CNIConfig
}

func newNode(t *testing.T) *node {
	id := fmt.Sprintf("c%05x", rand.Uint32()&0xfffff)
	dir, err := os.MkdirTemp("", "tscompat")
	if err != nil {
		t.Fatal(err)
	}
	n := &node{dir: dir, bin: filepath.Join(dir, "bin"), prefix: id + "-", gw: id + "gw"}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for out, pkg := range map[string]string{filepath.Join(dir, "tapswitch"): "./cmd/tapswitch", filepath.Join(n.bin, "tapswitch"): "./cmd/tapswitch-cni"} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = root
		if o, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, o)
		}
	}
	// host-local and portmap, the conflist's other plugins.
	src := os.Getenv("TAPSWITCH_CNI_BIN")
	if src == "" {
		t.Fatal("TAPSWITCH_CNI_BIN: the directory of host-local and portmap (`make cnicompat` sets it)")
	}
	for _, p := range []string{"host-local", "portmap"} {
		if _, err := os.Stat(filepath.Join(src, p)); err != nil {
			t.Fatalf("TAPSWITCH_CNI_BIN: %v (`make cni-plugins` builds it)", err)
		}
		if err := os.Symlink(filepath.Join(src, p), filepath.Join(n.bin, p)); err != nil {
			t.Fatal(err)
		}
	}
	n.subnet = freeSubnet(t)
	gw := n.subnet.IP.To4()
	gw = net.IPv4(gw[0], gw[1], gw[2], 1)
	cfg := fmt.Sprintf(`subnet: %s
gateway: {address: %s, interface: %s}
socket: %s/sock
state_dir: %s/state
log_level: warn
remove_pods_on_exit: true
nat: {service_masquerade: false, masquerade: {enabled: false}}
`, n.subnet, gw, n.gw, dir, dir)
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	d := exec.Command(filepath.Join(dir, "tapswitch"), "run", "--config", filepath.Join(dir, "config.yaml"))
	d.Stderr = &logs
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { d.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			d.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
		if l, err := net.InterfaceByName(n.gw); err == nil {
			t.Errorf("gateway %s left after the daemon stopped", l.Name)
		}
		for _, ns := range []string{"ok", "old"} {
			exec.Command("ip", "netns", "del", n.prefix+ns).Run()
		}
	})
	for i := 0; ; i++ {
		if _, err := os.Stat(filepath.Join(dir, "sock")); err == nil {
			break
		}
		if i == 100 {
			t.Fatalf("the daemon did not open its socket in 10 s:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	n.cni = libcni.NewCNIConfigWithCacheDir([]string{n.bin}, filepath.Join(dir, "cache"), nil)
	return n
}

// layout is conf with its paths pointed into the test's directory, as
// installed on a node: the daemon's socket, host-local's dataDir.
func (n *node) layout(t *testing.T, conf []byte) *libcni.NetworkConfigList {
	var m map[string]any
	if err := json.Unmarshal(conf, &m); err != nil {
		t.Fatal(err)
	}
	p := m["plugins"].([]any)[0].(map[string]any)
	p["socket"] = filepath.Join(n.dir, "sock")
	p["ipam"].(map[string]any)["dataDir"] = filepath.Join(n.dir, "ipam")
	b, _ := json.Marshal(m)
	list, err := libcni.ConfListFromBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func (n *node) rt(t *testing.T, name string) *libcni.RuntimeConf {
	ns := n.prefix + name
	if _, err := os.Stat("/var/run/netns/" + ns); err != nil {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v %s", ns, err, out)
		}
	}
	return &libcni.RuntimeConf{ContainerID: "compat" + strings.TrimSuffix(n.prefix, "-") + name, NetNS: "/var/run/netns/" + ns, IfName: "eth0"}
}

// add runs AddNetworkList; with errp nil a failure fails the test.
func (n *node) add(t *testing.T, list *libcni.NetworkConfigList, name string, errp *error) types.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := n.cni.AddNetworkList(ctx, list, n.rt(t, name))
	if errp != nil {
		*errp = err
		return nil
	}
	if err != nil {
		t.Fatalf("ADD %s: %v", name, err)
	}
	return r
}

func (n *node) del(t *testing.T, list *libcni.NetworkConfigList, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.cni.DelNetworkList(ctx, list, n.rt(t, name)); err != nil {
		t.Fatalf("DEL %s: %v", name, err)
	}
}

func (n *node) pods(t *testing.T) []map[string]any {
	out, err := exec.Command(filepath.Join(n.dir, "tapswitch"), "pod", "list", "-o", "json", "--socket", filepath.Join(n.dir, "sock")).Output()
	if err != nil {
		t.Fatalf("pod list: %v", err)
	}
	var pods []map[string]any
	if err := json.Unmarshal(out, &pods); err != nil {
		t.Fatalf("pod list %q: %v", out, err)
	}
	return pods
}

// empty: no pod on the switch, no address held by host-local.
func (n *node) empty(t *testing.T) {
	t.Helper()
	if pods := n.pods(t); len(pods) != 0 {
		t.Errorf("pods left: %v", pods)
	}
	ents, _ := os.ReadDir(filepath.Join(n.dir, "ipam", "tapswitch"))
	for _, e := range ents {
		if e.Name() != "lock" && !strings.HasPrefix(e.Name(), "last_reserved_ip") {
			t.Errorf("host-local reservation left: %s", e.Name())
		}
	}
}

// freeSubnet is 10.251.X.0/24, overlapping no route of the host's.
func freeSubnet(t *testing.T) *net.IPNet {
	out, err := exec.Command("ip", "-4", "route", "show", "table", "all").Output()
	if err != nil {
		t.Fatalf("ip route: %v", err)
	}
	var routes []*net.IPNet
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		dst := f[0]
		if dst == "local" || dst == "broadcast" || dst == "unreachable" {
			if len(f) < 2 {
				continue
			}
			dst = f[1]
		}
		if !strings.Contains(dst, "/") {
			dst += "/32"
		}
		if _, p, err := net.ParseCIDR(dst); err == nil {
			routes = append(routes, p)
		}
	}
	for try := 0; try < 64; try++ {
		_, p, _ := net.ParseCIDR(fmt.Sprintf("10.251.%d.0/24", rand.IntN(256)))
		free := true
		for _, r := range routes {
			if r.Contains(p.IP) || p.Contains(r.IP) {
				free = false
			}
		}
		if free {
			return p
		}
	}
	t.Fatal("no free 10.251.X.0/24")
	return nil
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }
