// Command imagebuild builds the node image deploy/daemonset.yaml runs, as
// an image tarball, without a container engine: `make image` runs
//
//	go run ./internal/imagebuild -o bin/tapswitch-image.tar
//
// from the repository root. It compiles static binaries (CGO_ENABLED=0: the
// image has no libc, no shell, nothing but these files) and packs them on
// an empty base:
//
//	/usr/local/bin/tapswitch               the daemon and CLI, node build (ENTRYPOINT)
//	/usr/local/lib/cni/tapswitch           tapswitch-cni, the CNI plugin
//	/usr/local/lib/cni/host-local          containernetworking/plugins, -cni-plugins
//	/usr/local/lib/cni/loopback            (containerd runs it for every sandbox)
//	/usr/local/lib/cni/portmap             (hostPort, chained in the conflist)
//	/etc/tapswitch/10-tapswitch.conflist   deploy/10-tapswitch.conflist
//	/etc/tapswitch/config.yaml             the default configuration
//	/var/run -> /run                       so /var/run/netns is the host's /run/netns
//
// The node build is cmd/tapswitch built with -tags nolab: the full CLI
// less the lab (bench, sim, demo) and the packages only the lab imports.
//
// The DaemonSet's init container runs `tapswitch install-cni`, which copies
// /usr/local/lib/cni/* and the conflist onto the node.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/tapswitch/tapswitch/internal/ociimage"
)

func main() {
	out := flag.String("o", "bin/tapswitch-image.tar", "the image tarball to write")
	ref := flag.String("name", ociimage.NodeImage, "the image's name (deploy/daemonset.yaml runs "+ociimage.NodeImage+")")
	plugins := flag.String("cni-plugins", "v1.9.1", "the containernetworking/plugins version of host-local, loopback and portmap")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "imagebuild: no arguments expected; see -h")
		os.Exit(2)
	}
	digest, err := build(*out, *ref, *plugins)
	if err != nil {
		fmt.Fprintln(os.Stderr, "imagebuild:", err)
		os.Exit(1)
	}
	fmt.Printf("%s %s %s\n", *out, *ref, digest)
}

func build(out, ref, pluginsVersion string) (string, error) {
	if _, err := os.Stat("deploy/10-tapswitch.conflist"); err != nil {
		return "", fmt.Errorf("run from the repository root: %w", err)
	}
	tmp, err := os.MkdirTemp("", "tswimage")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cni := filepath.Join(tmp, "cni")
	if err := goCmd("", nil, "build", "-trimpath", "-tags", "nolab", "-o", filepath.Join(tmp, "tapswitch"), "./cmd/tapswitch"); err != nil {
		return "", err
	}
	if err := goCmd("", nil, "build", "-trimpath", "-o", filepath.Join(cni, "tapswitch"), "./cmd/tapswitch-cni"); err != nil {
		return "", err
	}
	// Outside this module, so that the plugins build with their own
	// module's dependencies, as a `go install` of the release would.
	var pkgs []string
	for _, p := range []string{"ipam/host-local", "main/loopback", "meta/portmap"} {
		pkgs = append(pkgs, "github.com/containernetworking/plugins/plugins/"+p+"@"+pluginsVersion)
	}
	if err := goCmd(tmp, []string{"GOBIN=" + cni}, append([]string{"install", "-trimpath"}, pkgs...)...); err != nil {
		return "", err
	}
	files := []ociimage.File{
		{Path: "/usr/local/bin/tapswitch", Src: filepath.Join(tmp, "tapswitch"), Mode: 0o755},
		{Path: "/etc/tapswitch/10-tapswitch.conflist", Src: "deploy/10-tapswitch.conflist"},
		{Path: "/etc/tapswitch/config.yaml", Src: "cmd/internal/config/default.yaml"},
		{Path: "/var/run", Link: "/run"},
	}
	for _, p := range []string{"tapswitch", "host-local", "loopback", "portmap"} {
		files = append(files, ociimage.File{Path: "/usr/local/lib/cni/" + p, Src: filepath.Join(cni, p), Mode: 0o755})
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	h, err := ociimage.Write(out, ociimage.Spec{
		Name:       ref,
		Files:      files,
		Entrypoint: []string{"/usr/local/bin/tapswitch"},
		Cmd:        []string{"run", "--config", "/etc/tapswitch/config.yaml"},
	})
	if err != nil {
		return "", err
	}
	return h.String(), nil
}

// goCmd runs the go tool with CGO_ENABLED=0 (static binaries) in dir.
func goCmd(dir string, env []string, args ...string) error {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "CGO_ENABLED=0"), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}
