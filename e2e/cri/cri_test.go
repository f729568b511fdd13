package cri

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/internal/ociimage"
)

// TestContainerdCRI is the node as Kubernetes runs it: pod sandboxes
// started and stopped through containerd's CRI plugin by crictl (the
// kubelet's calls), the shipped conflist, the plugins installed as the
// DaemonSet installs them, then the node image: the DaemonSet's init
// container and daemon run from the `make image` tarball with `ctr run`.
// docs/cni.md's "Run it on a node" follows it step by step.
func TestContainerdCRI(t *testing.T) {
	start := time.Now()
	n := newNode(t)
	n.writeConfigMap(n.conflist(nil), n.daemonConfig(n.stateDir))
	n.installCNI()
	n.startContainerd()
	n.startDaemon()
	// run is t.Run with the node's helpers failing the subtest.
	run := func(name string, f func(t *testing.T)) bool {
		return t.Run(name, func(st *testing.T) {
			n.t = st
			defer func() { n.t = t }()
			f(st)
		})
	}

	var p1, p2 sandbox
	run("two pods", func(t *testing.T) {
		p1, p2 = n.mustRunp("p1"), n.mustRunp("p2")
		for _, p := range []sandbox{p1, p2} {
			if p.State != "SANDBOX_READY" || !n.env.Subnet.Contains(p.IP) || p.IP == n.env.GwAddr || p.Netns == "" {
				t.Fatalf("sandbox %+v: want ready, an address in %s other than the gateway, a netns", p, n.env.Subnet)
			}
		}
		if p1.IP == p2.IP {
			t.Fatalf("both pods have %s", p1.IP)
		}
		n.agrees(p1, p2)
		n.ping(p1, p2.IP, n.env.GwAddr)
		n.ping(p2, p1.IP, n.env.GwAddr)
	})
	if t.Failed() {
		return
	}

	run("stop twice and remove", func(t *testing.T) {
		// The first stop is a DEL with the sandbox's netns: the port and
		// the address go, then the runtime removes the namespace.
		if _, err := n.crictl("stopp", p1.ID); err != nil {
			t.Fatal(err)
		}
		n.agrees(p2)
		if got := n.reservations(); !slices.Equal(got, []string{p2.IP.String()}) {
			t.Errorf("host-local holds %v, want only %s", got, p2.IP)
		}
		if fileExists(p1.Netns) {
			t.Errorf("netns %s still there after stopp", p1.Netns)
		}
		// Then again and the removal, the namespace gone: idempotent.
		for _, args := range [][]string{{"stopp", p1.ID}, {"rmp", p1.ID}} {
			if _, err := n.crictl(args...); err != nil {
				t.Fatal(err)
			}
		}
		n.agrees(p2)
		if out, _ := n.crictl("pods", "-q", "--id", p1.ID); strings.TrimSpace(out) != "" {
			t.Errorf("sandbox %s still listed after rmp", out)
		}
	})

	var p3 sandbox
	run("daemon restart between pods", func(t *testing.T) {
		n.stopDaemon()
		n.startDaemon()
		n.agrees(p2) // re-attached from the state file
		p3 = n.mustRunp("p3")
		n.agrees(p2, p3)
		n.ping(p3, p2.IP, n.env.GwAddr)
		n.ping(p2, p3.IP)
	})

	run("ADD while the daemon is down", func(t *testing.T) {
		n.stopDaemon()
		before := n.reservations()
		_, err := n.runp("down")
		n.startDaemon()
		if err == nil || !strings.Contains(err.Error(), "tapswitch daemon not reachable") {
			t.Fatalf("RunPodSandbox with the daemon down: %v, want the plugin's \"tapswitch daemon not reachable\"", err)
		}
		t.Logf("the runtime reported: %v", err)
		if got := n.reservations(); !slices.Equal(got, before) {
			t.Errorf("host-local holds %v after the failed ADD, want %v", got, before)
		}
		n.agrees(p2, p3) // no port, no pod for it
		// containerd 1.6 keeps the sandbox, not ready and without an
		// address, for the kubelet to remove, as it does any dead
		// sandbox: its DEL finds nothing to release.
		out, err := n.crictl("pods", "-q", "--name", n.env.Prefix+"-down")
		if err != nil || len(strings.Fields(out)) != 1 {
			t.Errorf("the failed sandbox: %q %v, want one", out, err)
		}
		for _, id := range strings.Fields(out) {
			s := n.inspectp(id)
			if s.State != "SANDBOX_NOTREADY" || s.IP.IsValid() {
				t.Errorf("failed sandbox %+v: want not ready, no address", s)
			}
			if err := n.remove(id); err != nil {
				t.Error(err)
			}
		}
		n.agrees(p2, p3)
		if got := n.reservations(); !slices.Equal(got, before) {
			t.Errorf("host-local holds %v after removing the failed sandbox, want %v", got, before)
		}
		// Every sandbox namespace on the host is one of the live pods'
		// (containerd names them cni-UUID; the failed one's is gone too).
		if got := sandboxNetns(); !slices.Equal(got, sortedOf(p2.Netns, p3.Netns)) {
			t.Errorf("sandbox namespaces %v after removing the failed sandbox, want %v", got, sortedOf(p2.Netns, p3.Netns))
		}
	})

	run("20 pods in parallel", func(t *testing.T) {
		const count = 20
		pods := make([]sandbox, count)
		errs := make([]error, count)
		var wg sync.WaitGroup
		for i := range count {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id, err := n.runp(fmt.Sprintf("par%02d", i))
				if err != nil {
					errs[i] = err
					return
				}
				pods[i], errs[i] = n.inspect(id)
			}()
		}
		wg.Wait()
		var up []sandbox
		for i, err := range errs {
			if err != nil {
				t.Errorf("pod par%02d: %v", i, err)
			} else {
				up = append(up, pods[i])
			}
		}
		seen := map[netip.Addr]bool{p2.IP: true, p3.IP: true}
		for _, p := range up {
			if !n.env.Subnet.Contains(p.IP) || seen[p.IP] {
				t.Errorf("sandbox %.12s: address %s outside %s or given twice", p.ID, p.IP, n.env.Subnet)
			}
			seen[p.IP] = true
		}
		n.agrees(append(up, p2, p3)...)
		if len(up) > 1 {
			n.ping(up[0], up[len(up)-1].IP, n.env.GwAddr)
		}
		for i := range count {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if pods[i].ID == "" {
					return
				}
				if err := n.remove(pods[i].ID); err != nil {
					t.Errorf("pod par%02d: %v", i, err)
				}
			}()
		}
		wg.Wait()
		n.agrees(p2, p3)
		want := []string{p2.IP.String(), p3.IP.String()}
		slices.Sort(want)
		if got := n.reservations(); !slices.Equal(got, want) {
			t.Errorf("host-local holds %v, want %v", got, want)
		}
		if got := n.liveNetns(); !slices.Equal(got, sortedOf(p2.Netns, p3.Netns)) {
			t.Errorf("sandbox namespaces left: %v", got)
		}
	})
	if err := n.remove(p3.ID); err != nil {
		t.Fatal(err)
	}

	run("node image", func(t *testing.T) {
		n.stopDaemon() // p2 stays, for the daemon from the image to re-attach
		n.nodeImage(p2)
	})

	if err := n.remove(p2.ID); err != nil {
		t.Fatal(err)
	}
	n.agrees()
	if got := n.reservations(); len(got) != 0 {
		t.Errorf("host-local holds %v after every pod was removed", got)
	}
	if got := n.liveNetns(); len(got) != 0 {
		t.Errorf("sandbox namespaces left: %v", got)
	}
	t.Logf("whole test: %v", time.Since(start).Round(time.Second))
}

// nodeImage runs the DaemonSet from the node image: its init container's
// command, then its daemon's, each with `ctr run`, host network,
// privileges, host PIDs and the volumes the DaemonSet declares (hostPaths
// pointed at the test's directories; /run is the host's). p is a pod left
// by the daemon that ran before, which the new one must re-attach.
func (n *node) nodeImage(p sandbox) {
	t := n.t
	img := os.Getenv("TAPSWITCH_IMAGE")
	if img == "" {
		img = filepath.Join(n.dir, "tapswitch-image.tar")
		cmd := exec.Command("go", "run", "./internal/imagebuild", "-o", img)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("imagebuild: %v\n%s", err, out)
		}
	}
	n.importImage(img)
	ds := n.daemonSet()
	if ds.init.image != ociimage.NodeImage || ds.daemon.image != ociimage.NodeImage {
		t.Fatalf("DaemonSet images %q and %q, want %q", ds.init.image, ds.daemon.image, ociimage.NodeImage)
	}
	// The ConfigMap as the containers see it: the state directory where
	// the DaemonSet mounts it.
	n.writeConfigMap(n.conflist(nil), n.daemonConfig(ds.daemon.mountOf(n.stateDir)))
	for _, f := range []string{"tapswitch", "host-local", "loopback", "portmap"} {
		os.Remove(filepath.Join(n.binDir, f))
	}
	os.Remove(filepath.Join(n.confDir, "10-tapswitch.conflist"))

	name := n.env.Prefix
	hostPID := fmt.Sprintf("/proc/%d/ns/pid", n.containerd.Process.Pid)
	out, err := n.ctrCmd(ds.init.ctrRun(name+"-install", hostPID)...)
	if err != nil {
		t.Fatalf("init container: %v\n%s", err, out)
	}
	for _, f := range []string{"tapswitch", "host-local", "loopback", "portmap"} {
		if st, err := os.Stat(filepath.Join(n.binDir, f)); err != nil || st.Mode().Perm()&0o111 == 0 {
			t.Errorf("init container: %s not installed as an executable: %v", f, err)
		}
	}
	if !fileExists(filepath.Join(n.confDir, "10-tapswitch.conflist")) {
		t.Fatalf("init container did not install the conflist:\n%s", out)
	}

	n.daemonLog = &lockedBuffer{}
	n.daemonCtr = name + "-daemon"
	cmd := exec.Command(n.tools.ctr, append([]string{"--address", n.criSock, "-n", "k8s.io"}, ds.daemon.ctrRun(n.daemonCtr, hostPID)...)...)
	cmd.Stdout, cmd.Stderr = n.daemonLog, n.daemonLog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.daemon = cmd // stopDaemon's SIGTERM goes to ctr, which forwards it
	n.waitDaemon()
	n.agrees(p)
	n.ping(p, n.env.GwAddr)
	q := n.mustRunp("img")
	n.agrees(p, q)
	n.ping(q, p.IP, n.env.GwAddr)
	if err := n.remove(q.ID); err != nil {
		t.Error(err)
	}
	n.agrees(p)
	n.stopDaemon()
	n.daemonCtr = ""
	// Back to the daemon from this tree for the rest, with the same state.
	n.writeConfigMap(n.conflist(nil), n.daemonConfig(n.stateDir))
	n.startDaemon()
}

// agrees checks that the daemon's pods and ports are exactly the sandboxes
// given, as crictl inspectp reports them: one CNI attachment per sandbox,
// up, with its container ID, netns and addresses (ip, and ips in order:
// status.network.ip then additionalIps), on a port that is up.
func (n *node) agrees(want ...sandbox) {
	n.t.Helper()
	pods := n.pods()
	ports := n.ports()
	byID := map[string]pod{}
	for _, p := range pods {
		byID[p.ContainerID] = p
	}
	if len(pods) != len(want) {
		n.t.Errorf("daemon has %d pods, crictl %d sandboxes", len(pods), len(want))
	}
	for _, s := range want {
		p, ok := byID[s.ID]
		if !ok {
			n.t.Errorf("sandbox %.12s (%s): no pod in the daemon", s.ID, s.IP)
			continue
		}
		ip, _, _ := strings.Cut(p.IP, "/")
		var ips []string // the pod's addresses without their prefix lengths
		for _, a := range p.IPs {
			a, _, _ := strings.Cut(a, "/")
			ips = append(ips, a)
		}
		var want []string
		for _, a := range s.IPs {
			want = append(want, a.String())
		}
		if p.State != "up" || p.Netns != s.Netns || ip != s.IP.String() || !slices.Equal(ips, want) || p.IfName != "eth0" || p.Network != "tapswitch" {
			n.t.Errorf("pod %s: %s netns %s ip %s ips %v if %s network %s; crictl: netns %s ip %s, all %v", p.Name, p.State, p.Netns, p.IP, p.IPs, p.IfName, p.Network, s.Netns, s.IP, s.IPs)
		}
		found := false
		for _, pt := range ports {
			if pt.Name == p.Name && pt.Kind == "pod" && pt.State == "up" && pt.ID == p.Port {
				found = true
			}
		}
		if !found {
			n.t.Errorf("pod %s: no port %d up", p.Name, p.Port)
		}
	}
	podPorts := 0
	for _, pt := range ports {
		if pt.Kind == "pod" {
			podPorts++
		}
	}
	if podPorts != len(want) {
		n.t.Errorf("%d pod ports, want %d", podPorts, len(want))
	}
}

// ping sends echo requests from inside s's sandbox netns (the path crictl
// inspectp reports) to each address; every one must be answered.
func (n *node) ping(s sandbox, dsts ...netip.Addr) {
	n.t.Helper()
	for _, d := range dsts {
		if got, err := pingFrom(s.Netns, d, 3); err != nil || got != 3 {
			n.t.Errorf("ping from %s (netns %s) to %s: %d of 3 answered %v", s.IP, s.Netns, d, got, err)
		}
	}
}

func sortedOf(s ...string) []string { slices.Sort(s); return s }

// sandboxNetns lists the namespaces containerd's CRI makes for sandboxes
// (/var/run/netns/cni-UUID).
func sandboxNetns() []string {
	var out []string
	ents, _ := os.ReadDir("/var/run/netns")
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "cni-") {
			out = append(out, "/var/run/netns/"+e.Name())
		}
	}
	slices.Sort(out)
	return out
}

// container is one of the DaemonSet's containers: its image, command and
// mounts (host path -> container path, options).
type container struct {
	image   string
	command []string
	mounts  []mount
}

type mount struct{ src, dst, opts string }

// mountOf is where the container sees host path src.
func (c container) mountOf(src string) string {
	for _, m := range c.mounts {
		if m.src == src {
			return m.dst
		}
	}
	return ""
}

// ctrRun is `ctr run` for the container, as the kubelet would run it for
// the DaemonSet: privileged, host network, the host's PID namespace (named
// by a process in it: containerd's), its volumes.
func (c container) ctrRun(name, hostPID string) []string {
	args := []string{"run", "--rm", "--snapshotter", "native", "--privileged", "--net-host", "--with-ns", "pid:" + hostPID}
	for _, m := range c.mounts {
		args = append(args, "--mount", "type=bind,src="+m.src+",dst="+m.dst+",options="+m.opts)
	}
	return append(append(args, c.image, name), c.command...)
}

type daemonSet struct{ init, daemon container }

// daemonSet reads deploy/daemonset.yaml: the volumes its containers mount,
// with each hostPath replaced by the test's directory for it and the
// ConfigMap by the directory holding its files.
func (n *node) daemonSet() daemonSet {
	var ds struct {
		Spec struct {
			Template struct {
				Spec struct {
					HostNetwork, HostPID bool
					InitContainers       []k8sContainer `yaml:"initContainers"`
					Containers           []k8sContainer `yaml:"containers"`
					Volumes              []struct {
						Name     string `yaml:"name"`
						HostPath *struct {
							Path string `yaml:"path"`
						} `yaml:"hostPath"`
						ConfigMap *struct{} `yaml:"configMap"`
					} `yaml:"volumes"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	if err := n.deployDoc("daemonset.yaml", "DaemonSet").Decode(&ds); err != nil {
		n.t.Fatal(err)
	}
	hostDirs := map[string]string{ // the DaemonSet's hostPath -> the test's
		"/run":               "/run",
		"/var/lib/tapswitch": n.stateDir,
		"/opt/cni/bin":       n.binDir,
		"/etc/cni/net.d":     n.confDir,
	}
	src := map[string]string{}
	for _, v := range ds.Spec.Template.Spec.Volumes {
		switch {
		case v.HostPath != nil:
			d, ok := hostDirs[v.HostPath.Path]
			if !ok {
				n.t.Fatalf("DaemonSet volume %s: hostPath %s is new to this test", v.Name, v.HostPath.Path)
			}
			src[v.Name] = d
		case v.ConfigMap != nil:
			src[v.Name] = n.cfgDir
		}
	}
	conv := func(c k8sContainer) container {
		out := container{image: c.Image, command: c.Command}
		for _, vm := range c.VolumeMounts {
			s, ok := src[vm.Name]
			if !ok {
				n.t.Fatalf("DaemonSet container %s: volume %s not declared", c.Name, vm.Name)
			}
			opts := "rbind:rw"
			if vm.ReadOnly {
				opts = "rbind:ro"
			}
			if vm.MountPropagation == "HostToContainer" {
				opts += ":rslave"
			}
			out.mounts = append(out.mounts, mount{s, vm.MountPath, opts})
		}
		return out
	}
	spec := ds.Spec.Template.Spec
	if len(spec.InitContainers) != 1 || len(spec.Containers) != 1 {
		n.t.Fatalf("DaemonSet: %d init containers, %d containers; want one each", len(spec.InitContainers), len(spec.Containers))
	}
	return daemonSet{conv(spec.InitContainers[0]), conv(spec.Containers[0])}
}

type k8sContainer struct {
	Name         string   `yaml:"name"`
	Image        string   `yaml:"image"`
	Command      []string `yaml:"command"`
	VolumeMounts []struct {
		Name             string `yaml:"name"`
		MountPath        string `yaml:"mountPath"`
		ReadOnly         bool   `yaml:"readOnly"`
		MountPropagation string `yaml:"mountPropagation"`
	} `yaml:"volumeMounts"`
}
