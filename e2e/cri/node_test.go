package cri

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
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/internal/ociimage"
)

const (
	root = "../.."
	// pauseImage is the sandbox image the test builds and containerd's
	// sandbox_image names.
	pauseImage = "tapswitch.invalid/e2e/pause:1"
	// podNamespace is the Kubernetes namespace of the test's pods.
	podNamespace = "tswe2e"
)

// node is one test's Kubernetes node without the kubelet: containerd with
// its CRI plugin, driven by crictl as the kubelet drives it, the CNI
// directories laid out as the DaemonSet's init container lays them out, and
// the tapswitch daemon. Everything is the test's own: containerd's root,
// state, socket and config under a temp dir; the daemon's socket under
// /run/PREFIX (where a daemon in a container sees it too), its gateway,
// subnet and state (isolate). The cleanup removes all of it, even
// after a failure.
type node struct {
	t   *testing.T
	env isolation
	dir string // containerd and CNI: root, state, sock, opt/cni/bin, etc/cni/net.d, ipam

	tools struct{ containerd, ctr, crictl string }
	bins  struct {
		tapswitch string // the daemon and CLI built from this tree
		cniSrc    string // what the image has in /usr/local/lib/cni: tapswitch-cni as "tapswitch", host-local, loopback, portmap
	}

	runDir   string // /run/PREFIX: the daemon's socket
	socket   string
	stateDir string
	ipamDir  string // host-local's dataDir
	binDir   string // the runtime's CNI bin dir (the host's /opt/cni/bin)
	confDir  string // its conf dir (the host's /etc/cni/net.d)
	cfgDir   string // the ConfigMap's files (config.yaml, 10-tapswitch.conflist)
	criSock  string

	containerd *exec.Cmd
	cdLog      *lockedBuffer
	daemon     *exec.Cmd
	daemonLog  *lockedBuffer
	daemonCtr  string // the daemon's ctr container, when it runs from the image

	mu     sync.Mutex
	netnss map[string]bool // every sandbox netns path containerd reported
}

func newNode(t *testing.T) *node {
	t.Helper()
	requireRoot(t)
	n := &node{t: t, env: isolate(t), netnss: map[string]bool{}}
	n.findTools()
	var err error
	if n.dir, err = os.MkdirTemp("", "tswcri"); err != nil {
		t.Fatal(err)
	}
	n.runDir = "/run/tswe2e-" + n.env.Prefix
	n.socket = n.runDir + "/sock"
	n.stateDir = filepath.Join(n.dir, "state-tapswitch")
	n.ipamDir = filepath.Join(n.dir, "ipam")
	n.binDir = filepath.Join(n.dir, "opt/cni/bin")
	n.confDir = filepath.Join(n.dir, "etc/cni/net.d")
	n.cfgDir = filepath.Join(n.dir, "configmap")
	n.criSock = filepath.Join(n.dir, "containerd.sock")
	for _, d := range []string{n.runDir, n.stateDir, n.binDir, n.confDir, n.cfgDir, filepath.Join(n.dir, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(n.cleanup)
	n.build()
	return n
}

// findTools finds containerd, ctr and runc (Debian's containerd package)
// and crictl (go install, into $HOME/go/bin); `make cri-tools` installs them.
func (n *node) findTools() {
	find := func(name string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		if home, err := os.UserHomeDir(); err == nil {
			if p := filepath.Join(home, "go", "bin", name); fileExists(p) {
				return p
			}
		}
		n.t.Fatalf("%s not found in PATH or ~/go/bin: `make cri-tools` installs containerd and runc (Debian) and crictl", name)
		return ""
	}
	n.tools.containerd, n.tools.ctr, n.tools.crictl = find("containerd"), find("ctr"), find("crictl")
	find("runc")
}

// build compiles the daemon, the plugin and the pause image's binary, and
// gathers host-local, loopback and portmap (TAPSWITCH_CNI_BIN, which `make
// test` sets, or containernetworking/plugins v1.9.1 built here).
func (n *node) build() {
	n.bins.tapswitch = filepath.Join(n.dir, "tapswitch")
	n.bins.cniSrc = filepath.Join(n.dir, "cni-src")
	goBuild(n.t, n.bins.tapswitch, "./cmd/tapswitch")
	goBuild(n.t, filepath.Join(n.bins.cniSrc, "tapswitch"), "./cmd/tapswitch-cni")
	plugins := []string{"host-local", "loopback", "portmap"}
	src := os.Getenv("TAPSWITCH_CNI_BIN")
	for _, p := range plugins {
		if src == "" || !fileExists(filepath.Join(src, p)) {
			src = filepath.Join(n.dir, "cni-built")
			var pkgs []string
			for _, p := range []string{"ipam/host-local", "main/loopback", "meta/portmap"} {
				pkgs = append(pkgs, "github.com/containernetworking/plugins/plugins/"+p+"@v1.9.1")
			}
			cmd := exec.Command("go", append([]string{"install"}, pkgs...)...)
			cmd.Dir = n.dir
			cmd.Env = append(os.Environ(), "GOBIN="+src, "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				n.t.Fatalf("go install the CNI plugins: %v\n%s", err, out)
			}
			break
		}
	}
	for _, p := range plugins {
		b, err := os.ReadFile(filepath.Join(src, p))
		if err != nil {
			n.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(n.bins.cniSrc, p), b, 0o755); err != nil {
			n.t.Fatal(err)
		}
	}
}

func goBuild(t *testing.T, out, pkg string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

// conflist is deploy/10-tapswitch.conflist as shipped, with only its
// paths changed to the test's (the daemon's socket, host-local's dataDir),
// then edit applied to the first plugin's ipam (nil: none). A dual-stack
// case passes one that sets "ranges".
func (n *node) conflist(edit func(ipam map[string]any)) []byte {
	b, err := os.ReadFile(filepath.Join(root, "deploy/10-tapswitch.conflist"))
	if err != nil {
		n.t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		n.t.Fatal(err)
	}
	p := m["plugins"].([]any)[0].(map[string]any)
	p["socket"] = n.socket
	ipam := p["ipam"].(map[string]any)
	ipam["dataDir"] = n.ipamDir
	if edit != nil {
		edit(ipam)
	}
	out, _ := json.MarshalIndent(m, "", "  ")
	return out
}

// daemonConfig is the ConfigMap's config.yaml with the test's subnet,
// gateway (and on a dual-stack node subnet_v6 and gateway.address_v6), socket and state directory, and no nftables rules (nothing
// touches the host's firewall). stateDir is where the daemon sees it.
func (n *node) daemonConfig(stateDir string) []byte {
	ds := n.deployDoc("configmap.yaml", "ConfigMap")
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	if err := ds.Decode(&cm); err != nil {
		n.t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &cfg); err != nil {
		n.t.Fatal(err)
	}
	cfg["subnet"] = n.env.Subnet.String()
	cfg["gateway"] = map[string]any{"address": n.env.GwAddr.String(), "interface": n.env.GwIf}
	if n.env.Subnet6.IsValid() {
		cfg["subnet_v6"] = n.env.Subnet6.String()
		cfg["gateway"].(map[string]any)["address_v6"] = n.env.GwAddr6.String()
	}
	cfg["socket"] = n.socket
	cfg["state_dir"] = stateDir
	cfg["nat"] = map[string]any{"service_masquerade": false, "masquerade": map[string]any{"enabled": false}}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		n.t.Fatal(err)
	}
	return out
}

// deployDoc is the manifest of kind in deploy/file.
func (n *node) deployDoc(file, kind string) *yaml.Node {
	b, err := os.ReadFile(filepath.Join(root, "deploy", file))
	if err != nil {
		n.t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			n.t.Fatalf("deploy/%s: no %s: %v", file, kind, err)
		}
		var k struct {
			Kind string `yaml:"kind"`
		}
		doc.Decode(&k)
		if k.Kind == kind {
			return &doc
		}
	}
}

// writeConfigMap writes the ConfigMap's two files, as its volume shows
// them to the containers, into cfgDir.
func (n *node) writeConfigMap(conflist, config []byte) {
	if err := os.WriteFile(filepath.Join(n.cfgDir, "10-tapswitch.conflist"), conflist, 0o644); err != nil {
		n.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(n.cfgDir, "config.yaml"), config, 0o644); err != nil {
		n.t.Fatal(err)
	}
}

// installCNI lays out the runtime's CNI directories as the DaemonSet's
// init container does, with the same command, from the built plugins.
func (n *node) installCNI() {
	out, err := exec.Command(n.bins.tapswitch, "install-cni", "--from", n.bins.cniSrc,
		"--conflist", filepath.Join(n.cfgDir, "10-tapswitch.conflist"),
		"--cni-bin-dir", n.binDir, "--cni-conf-dir", n.confDir).CombinedOutput()
	if err != nil {
		n.t.Fatalf("install-cni: %v\n%s", err, out)
	}
}

// startContainerd runs containerd with a config of its own and imports the
// pause image. restrict_oom_score_adj: the sandbox's oom_score_adj (-998)
// is one a runtime without CAP_SYS_RESOURCE (a node in a container) may
// not set; restricted, containerd keeps it no lower than its own.
func (n *node) startContainerd() {
	cfg := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.overlayfs"]
[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q
[plugins."io.containerd.internal.v1.opt"]
  path = %[5]q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[6]q
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[7]q
    conf_dir = %[8]q
`, filepath.Join(n.dir, "root"), filepath.Join(n.dir, "state"), n.criSock, n.criSock+".ttrpc",
		filepath.Join(n.dir, "opt"), pauseImage, n.binDir, n.confDir)
	path := filepath.Join(n.dir, "containerd.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		n.t.Fatal(err)
	}
	n.cdLog = &lockedBuffer{}
	n.containerd = exec.Command(n.tools.containerd, "--config", path)
	n.containerd.Stdout, n.containerd.Stderr = n.cdLog, n.cdLog
	// Its own process group: the shims it starts are killed with it.
	n.containerd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := n.containerd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.waitFor("containerd's socket", 20*time.Second, func() bool {
		_, err := n.ctrCmd("version")
		return err == nil
	})
	crictlCfg := fmt.Sprintf("runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 60\n", n.criSock, n.criSock)
	if err := os.WriteFile(filepath.Join(n.dir, "crictl.yaml"), []byte(crictlCfg), 0o644); err != nil {
		n.t.Fatal(err)
	}

	pause := filepath.Join(n.dir, "pause")
	goBuild(n.t, pause, "./e2e/cri/pause")
	tarPath := filepath.Join(n.dir, "pause.tar")
	if _, err := ociimage.Write(tarPath, ociimage.Spec{
		Name:       pauseImage,
		Files:      []ociimage.File{{Path: "/pause", Src: pause, Mode: 0o755}},
		Entrypoint: []string{"/pause"},
	}); err != nil {
		n.t.Fatal(err)
	}
	n.importImage(tarPath)
}

func (n *node) importImage(tarPath string) {
	if out, err := n.ctrCmd("images", "import", "--snapshotter", "native", tarPath); err != nil {
		n.t.Fatalf("ctr images import %s: %v\n%s", tarPath, err, out)
	}
}

// ctrCmd runs ctr against the test's containerd, in the CRI's namespace.
func (n *node) ctrCmd(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, n.tools.ctr, append([]string{"--address", n.criSock, "-n", "k8s.io"}, args...)...).CombinedOutput()
}

// crictl runs crictl against the test's containerd; stdout, and an error
// carrying stderr.
func (n *node) crictl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, n.tools.crictl, append([]string{"--config", filepath.Join(n.dir, "crictl.yaml")}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("crictl %s: %v: %s", strings.Join(args, " "), err, lastLines(errb.String(), 3))
	}
	return out.String(), nil
}

// runp starts a pod sandbox named name (RunPodSandbox: CNI ADD) and
// returns its ID.
func (n *node) runp(name string) (string, error) {
	cfg := map[string]any{
		"metadata":      map[string]any{"name": n.env.Prefix + "-" + name, "namespace": podNamespace, "uid": n.env.Prefix + "-" + name, "attempt": 0},
		"log_directory": filepath.Join(n.dir, "logs", name),
		"linux":         map[string]any{},
	}
	b, _ := json.Marshal(cfg)
	path := filepath.Join(n.dir, "pod-"+name+".json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return "", err
	}
	out, err := n.crictl("runp", path)
	return strings.TrimSpace(out), err
}

func (n *node) mustRunp(name string) sandbox {
	n.t.Helper()
	id, err := n.runp(name)
	if err != nil {
		n.t.Fatalf("pod %s: %v\ncontainerd: %s", name, err, lastLines(n.cdLog.String(), 5))
	}
	return n.inspectp(id)
}

// sandbox is what `crictl inspectp` says of a pod: IP is
// status.network.ip, IPs that and status.network.additionalIps.
type sandbox struct {
	ID    string
	State string
	IP    netip.Addr
	IPs   []netip.Addr
	Netns string
}

func (n *node) inspectp(id string) sandbox {
	n.t.Helper()
	s, err := n.inspect(id)
	if err != nil {
		n.t.Fatal(err)
	}
	return s
}

// inspect is inspectp for any goroutine: it returns its error. Every
// sandbox netns it sees is remembered for the cleanup.
func (n *node) inspect(id string) (sandbox, error) {
	out, err := n.crictl("inspectp", id)
	if err != nil {
		return sandbox{}, err
	}
	var v struct {
		Status struct {
			ID      string `json:"id"`
			State   string `json:"state"`
			Network struct {
				IP            string `json:"ip"`
				AdditionalIPs []struct {
					IP string `json:"ip"`
				} `json:"additionalIps"`
			} `json:"network"`
		} `json:"status"`
		Info struct {
			RuntimeSpec struct {
				Linux struct {
					Namespaces []struct {
						Type string `json:"type"`
						Path string `json:"path"`
					} `json:"namespaces"`
				} `json:"linux"`
			} `json:"runtimeSpec"`
		} `json:"info"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		return sandbox{}, fmt.Errorf("inspectp %s: %v\n%s", id, err, out)
	}
	s := sandbox{ID: v.Status.ID, State: v.Status.State}
	if v.Status.Network.IP != "" {
		if s.IP, err = netip.ParseAddr(v.Status.Network.IP); err != nil {
			return s, fmt.Errorf("inspectp %s: ip %q: %v", id, v.Status.Network.IP, err)
		}
		s.IPs = append(s.IPs, s.IP)
	}
	for _, a := range v.Status.Network.AdditionalIPs {
		ip, err := netip.ParseAddr(a.IP)
		if err != nil {
			return s, fmt.Errorf("inspectp %s: additionalIps %q: %v", id, a.IP, err)
		}
		s.IPs = append(s.IPs, ip)
	}
	for _, ns := range v.Info.RuntimeSpec.Linux.Namespaces {
		if ns.Type == "network" {
			s.Netns = ns.Path
		}
	}
	if s.Netns != "" {
		n.mu.Lock()
		n.netnss[s.Netns] = true
		n.mu.Unlock()
	}
	return s, nil
}

// remove stops the pod twice (CNI DEL with its netns, then again with the
// netns gone) and removes it.
func (n *node) remove(id string) error {
	for _, args := range [][]string{{"stopp", id}, {"stopp", id}, {"rmp", id}} {
		if _, err := n.crictl(args...); err != nil {
			return err
		}
	}
	return nil
}

// startDaemon runs `tapswitch run` from this tree with the ConfigMap's
// config (as written into cfgDir) and waits for its socket.
func (n *node) startDaemon() {
	n.t.Helper()
	n.daemonLog = &lockedBuffer{}
	n.daemon = exec.Command(n.bins.tapswitch, "run", "--config", filepath.Join(n.cfgDir, "config.yaml"))
	n.daemon.Stdout, n.daemon.Stderr = n.daemonLog, n.daemonLog
	if err := n.daemon.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.waitDaemon()
}

func (n *node) waitDaemon() {
	n.waitFor("the daemon's socket", 30*time.Second, func() bool {
		return exec.Command(n.bins.tapswitch, "stats", "--socket", n.socket).Run() == nil
	})
}

// stopDaemon sends SIGTERM (the kubelet's stop) and waits; pods stay.
func (n *node) stopDaemon() {
	if n.daemon == nil {
		return
	}
	n.daemon.Process.Signal(syscall.SIGTERM)
	if err := waitTimeout(n.daemon, 20*time.Second); err != nil {
		n.t.Errorf("daemon: %v\n%s", err, n.daemonLog.String())
	}
	n.daemon = nil
}

// pods is `tapswitch pod list -o json`, ports `tapswitch ports -o json`:
// the CLI as a user runs it.
func (n *node) pods() []pod {
	n.t.Helper()
	var out []pod
	n.cli(&out, "pod", "list")
	return out
}

func (n *node) ports() []port {
	n.t.Helper()
	var out []port
	n.cli(&out, "ports")
	return out
}

// neighbours is `tapswitch arp -o json`: both families.
func (n *node) neighbours() []neighbour {
	n.t.Helper()
	var out []neighbour
	n.cli(&out, "arp")
	return out
}

func (n *node) cli(v any, args ...string) {
	n.t.Helper()
	out, err := exec.Command(n.bins.tapswitch, append(args, "-o", "json", "--socket", n.socket)...).Output()
	if err != nil {
		n.t.Fatalf("tapswitch %s: %v", strings.Join(args, " "), err)
	}
	if err := json.Unmarshal(out, v); err != nil {
		n.t.Fatalf("tapswitch %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// reservations are host-local's addresses in use (its dataDir without the
// lock and last-reserved files).
func (n *node) reservations() []string {
	var out []string
	ents, _ := os.ReadDir(filepath.Join(n.ipamDir, "tapswitch"))
	for _, e := range ents {
		if e.Name() != "lock" && !strings.HasPrefix(e.Name(), "last_reserved_ip") {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

// liveNetns are the sandbox namespaces containerd reported that still
// exist.
func (n *node) liveNetns() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for p := range n.netnss {
		if fileExists(p) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

func (n *node) waitFor(what string, d time.Duration, ok func() bool) {
	n.t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			n.t.Fatalf("%s: not ready after %v\ncontainerd: %s", what, d, lastLines(n.cdLog.String(), 10))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cleanup removes every pod (with the daemon and the CNI files back in
// place if the test failed without them), stops the daemon and containerd, kills what
// is left of containerd's process group (shims), unmounts what containerd
// mounted under the test's directory, removes the sandbox namespaces it
// reported and the directories. isolate's cleanup then removes the
// gateway.
func (n *node) cleanup() {
	if n.containerd != nil && n.containerd.Process != nil {
		// containerd tears a sandbox down only through the CNI files and
		// the daemon: put them back if the test failed without them.
		if n.daemonCtr != "" {
			n.ctrCmd("task", "kill", "-s", "SIGKILL", n.daemonCtr)
			if n.daemon != nil {
				waitTimeout(n.daemon, 10*time.Second)
				n.daemon = nil
			}
			n.daemonCtr = ""
			os.WriteFile(filepath.Join(n.cfgDir, "config.yaml"), n.daemonConfig(n.stateDir), 0o644)
		}
		if !fileExists(filepath.Join(n.confDir, "10-tapswitch.conflist")) {
			exec.Command(n.bins.tapswitch, "install-cni", "--from", n.bins.cniSrc,
				"--conflist", filepath.Join(n.cfgDir, "10-tapswitch.conflist"),
				"--cni-bin-dir", n.binDir, "--cni-conf-dir", n.confDir).Run()
			time.Sleep(time.Second) // containerd reloads it on inotify
		}
		if n.daemon == nil {
			n.daemonLog = &lockedBuffer{}
			n.daemon = exec.Command(n.bins.tapswitch, "run", "--config", filepath.Join(n.cfgDir, "config.yaml"))
			n.daemon.Stdout, n.daemon.Stderr = n.daemonLog, n.daemonLog
			if n.daemon.Start() != nil {
				n.daemon = nil
			} else {
				for i := 0; i < 100 && exec.Command(n.bins.tapswitch, "stats", "--socket", n.socket).Run() != nil; i++ {
					time.Sleep(100 * time.Millisecond)
				}
			}
		}
		if out, err := n.crictl("pods", "-q"); err == nil {
			for _, id := range strings.Fields(out) {
				n.inspect(id) // its netns, in case the runtime cannot remove it
				n.crictl("stopp", id)
				n.crictl("rmp", "-f", id)
			}
		}
	}
	if n.daemon != nil {
		n.daemon.Process.Kill()
		n.daemon.Wait()
	}
	if n.containerd != nil && n.containerd.Process != nil {
		pgid := n.containerd.Process.Pid
		n.containerd.Process.Signal(syscall.SIGTERM)
		if waitTimeout(n.containerd, 10*time.Second) != nil {
			n.containerd.Process.Kill()
			n.containerd.Wait()
		}
		// The shims left their own process group for one of their own;
		// find them by the socket they were started for.
		killShims(n.criSock)
		syscall.Kill(-pgid, syscall.SIGKILL)
		if n.t.Failed() {
			n.t.Logf("containerd log (end):\n%s", lastLines(n.cdLog.String(), 40))
		}
	}
	if n.t.Failed() && n.daemonLog != nil {
		n.t.Logf("daemon log (end):\n%s", lastLines(n.daemonLog.String(), 40))
	}
	unmountUnder(n.dir)
	for _, p := range n.liveNetns() {
		unix.Unmount(p, unix.MNT_DETACH)
		if err := os.Remove(p); err != nil {
			n.t.Errorf("sandbox netns %s: %v", p, err)
		}
	}
	os.RemoveAll(n.runDir)
	if err := os.RemoveAll(n.dir); err != nil {
		n.t.Errorf("remove %s: %v", n.dir, err)
	}
}

// killShims kills the containerd-shim processes started for socket.
func killShims(socket string) {
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) > 0 && strings.Contains(filepath.Base(args[0]), "containerd-shim") && slices.Contains(args, socket) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// unmountUnder unmounts every mount point under dir, deepest first.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mps []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			mps = append(mps, f[4])
		}
	}
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
	for _, mp := range mps {
		unix.Unmount(mp, unix.MNT_DETACH)
	}
}

func waitTimeout(cmd *exec.Cmd, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == -1 {
			return nil // killed by the signal asked for
		}
		return err
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("did not exit within %v of SIGTERM; killed", d)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
