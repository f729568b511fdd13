package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"go.yaml.in/yaml/v3"

	"github.com/tapswitch/tapswitch/cmd/internal/config"
	"github.com/tapswitch/tapswitch/internal/ociimage"
)

const deployDir = "../../deploy"

// k8s is the part of a manifest the checks read.
type k8s struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	HostNetwork    bool        `yaml:"hostNetwork"`
	HostPID        bool        `yaml:"hostPID"`
	InitContainers []container `yaml:"initContainers"`
	Containers     []container `yaml:"containers"`
	Volumes        []struct {
		Name     string `yaml:"name"`
		HostPath *struct {
			Path string `yaml:"path"`
		} `yaml:"hostPath"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
	} `yaml:"volumes"`
}

type container struct {
	Name            string   `yaml:"name"`
	Image           string   `yaml:"image"`
	Command         []string `yaml:"command"`
	SecurityContext struct {
		Privileged bool `yaml:"privileged"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

// manifests parses every document of every deploy/*.yaml strictly.
func manifests(t *testing.T) map[string]k8s {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(deployDir, "*.yaml"))
	if len(files) == 0 {
		t.Fatalf("no manifests in %s", deployDir)
	}
	out := make(map[string]k8s)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for i := 0; ; i++ {
			var node yaml.Node
			err := dec.Decode(&node)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			var m k8s
			if err := node.Decode(&m); err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			if m.APIVersion == "" || m.Kind == "" || m.Metadata.Name == "" {
				t.Fatalf("%s document %d: apiVersion, kind and metadata.name are required", f, i)
			}
			out[m.Kind+"/"+m.Metadata.Name] = m
		}
	}
	return out
}

func TestDeployManifests(t *testing.T) {
	ms := manifests(t)
	cm, ok := ms["ConfigMap/tapswitch"]
	if !ok || cm.APIVersion != "v1" {
		t.Fatalf("no v1 ConfigMap tapswitch in %v", keys(ms))
	}
	ds, ok := ms["DaemonSet/tapswitch"]
	if !ok || ds.APIVersion != "apps/v1" {
		t.Fatalf("no apps/v1 DaemonSet tapswitch in %v", keys(ms))
	}
	if cm.Metadata.Namespace != ds.Metadata.Namespace {
		t.Errorf("ConfigMap in %q, DaemonSet in %q", cm.Metadata.Namespace, ds.Metadata.Namespace)
	}

	// The daemon's configuration is valid as tapswitch reads it.
	cfg, err := config.Parse([]byte(cm.Data["config.yaml"]), "configmap config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The conflist is one libcni loads, the same as deploy/10-tapswitch.conflist,
	// with the plugin first and pointed at the daemon's socket.
	file, err := os.ReadFile(filepath.Join(deployDir, "10-tapswitch.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	if !sameJSON(t, file, []byte(cm.Data["10-tapswitch.conflist"])) {
		t.Error("the ConfigMap's conflist differs from deploy/10-tapswitch.conflist")
	}
	// cniVersion 1.0.0 for the runtimes whose libcni reads results up to
	// 1.0.0 and ignores cniVersions (containerd 1.6 and 1.7, checked with
	// their library in e2e/cnicompat); a libcni that knows cniVersions
	// (v1.2.0 and later, as this module's) picks the newest it supports.
	var versions struct {
		CNIVersion  string   `json:"cniVersion"`
		CNIVersions []string `json:"cniVersions"`
	}
	if err := json.Unmarshal(file, &versions); err != nil {
		t.Fatal(err)
	}
	if versions.CNIVersion != "1.0.0" || !slices.Equal(versions.CNIVersions, []string{"1.0.0", "1.1.0"}) {
		t.Errorf("conflist: cniVersion %q, cniVersions %q; want 1.0.0 and [1.0.0 1.1.0]", versions.CNIVersion, versions.CNIVersions)
	}
	list, err := libcni.ConfListFromBytes(file)
	if err != nil {
		t.Fatal(err)
	}
	if list.CNIVersion != "1.1.0" || len(list.Plugins) == 0 || list.Plugins[0].Network.Type != Plugin {
		t.Fatalf("conflist: version %s (libcni %s picks from cniVersions), plugins %d, first %+v", list.CNIVersion, "v1.3.1", len(list.Plugins), list.Plugins[0].Network)
	}
	nc, err := loadConf(list.Plugins[0].Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if nc.IPAM.Type != "host-local" || nc.Socket != cfg.Socket {
		t.Errorf("conflist: ipam %q, socket %q; want host-local and the daemon's %q", nc.IPAM.Type, nc.Socket, cfg.Socket)
	}

	// The DaemonSet: privileged, host network and PIDs, /run and the state
	// directory from the host, the init step installing into /opt/cni/bin.
	spec := ds.Spec.Template.Spec
	for k, v := range ds.Spec.Selector.MatchLabels {
		if ds.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the template's labels", k, v)
		}
	}
	if !spec.HostNetwork || !spec.HostPID {
		t.Error("DaemonSet: want hostNetwork and hostPID")
	}
	hostPaths := make(map[string]string)
	for _, v := range spec.Volumes {
		switch {
		case v.HostPath != nil:
			hostPaths[v.Name] = v.HostPath.Path
		case v.ConfigMap != nil && v.ConfigMap.Name != cm.Metadata.Name:
			t.Errorf("volume %s: ConfigMap %q, want %q", v.Name, v.ConfigMap.Name, cm.Metadata.Name)
		}
	}
	mounts := func(c container) map[string]string { // host path -> mount path
		m := make(map[string]string)
		for _, vm := range c.VolumeMounts {
			if hp, ok := hostPaths[vm.Name]; ok {
				m[hp] = vm.MountPath
			}
		}
		return m
	}
	if len(spec.Containers) != 1 || len(spec.InitContainers) != 1 {
		t.Fatalf("want one container and one init container")
	}
	d := spec.Containers[0]
	if !d.SecurityContext.Privileged || !strings.Contains(strings.Join(d.Command, " "), "run --config /etc/tapswitch/config.yaml") {
		t.Errorf("daemon container: privileged %v, command %q", d.SecurityContext.Privileged, d.Command)
	}
	dm := mounts(d)
	if dm["/run"] != "/run" || dm[cfg.StateDir] != cfg.StateDir {
		t.Errorf("daemon container: host mounts %v, want /run and %s", dm, cfg.StateDir)
	}
	in := spec.InitContainers[0]
	im := mounts(in)
	if im["/opt/cni/bin"] == "" || im["/etc/cni/net.d"] == "" {
		t.Fatalf("init container: host mounts %v, want /opt/cni/bin and /etc/cni/net.d", im)
	}
	// The init container copies the image's plugins and the ConfigMap's
	// conflist onto the host's mounts with `tapswitch install-cni`.
	install := strings.Join(in.Command, " ")
	for _, want := range []string{"/usr/local/bin/tapswitch install-cni", "--from=/usr/local/lib/cni",
		"--cni-bin-dir=" + im["/opt/cni/bin"], "--cni-conf-dir=" + im["/etc/cni/net.d"], "--conflist=/etc/tapswitch/10-tapswitch.conflist"} {
		if !strings.Contains(install, want) {
			t.Errorf("init container does not run %q: %s", want, install)
		}
	}
	if in.Image != ociimage.NodeImage {
		t.Errorf("init image %q, want %q, the image `make image` builds", in.Image, ociimage.NodeImage)
	}
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`(?m)^IMAGE\s*:=\s*(\S+)$`).FindSubmatch(mk); m == nil || string(m[1]) != ociimage.NodeImage {
		t.Errorf("Makefile IMAGE %q, want %q", m, ociimage.NodeImage)
	}
	if in.Image != d.Image {
		t.Errorf("init image %q, daemon image %q", in.Image, d.Image)
	}
}

func sameJSON(t *testing.T, a, b []byte) bool {
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func keys(m map[string]k8s) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
