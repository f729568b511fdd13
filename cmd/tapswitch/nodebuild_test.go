package main

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// labPackages are the packages only the lab (bench, sim, demo) needs: none
// of them may be linked into the node build or the CNI plugin.
var labPackages = []string{
	"github.com/tapswitch/tapswitch/bench",
	"github.com/tapswitch/tapswitch/sim",
	"github.com/tapswitch/tapswitch/cmd/internal/simreal",
	"github.com/tapswitch/tapswitch/cmd/internal/demo",
	"gonum.org/v1/plot",
}

func goTool(t *testing.T, args ...string) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(gobin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// isLab reports whether pkg is one of labPackages or below one.
func isLab(pkg string) bool {
	for _, l := range labPackages {
		if pkg == l || strings.HasPrefix(pkg, l+"/") {
			return true
		}
	}
	return false
}

// TestNodeBuildLeavesTheLabOut: the node build (-tags nolab) and the CNI
// plugin depend on no lab package, while the full build still does (so
// the check below looks for names that exist).
func TestNodeBuildLeavesTheLabOut(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
	}{
		{"node build", []string{"list", "-deps", "-tags", "nolab", "."}},
		{"tapswitch-cni", []string{"list", "-deps", "../tapswitch-cni"}},
	} {
		deps := strings.Fields(goTool(t, c.args...))
		if len(deps) == 0 {
			t.Fatalf("%s: go list -deps listed nothing", c.name)
		}
		for _, p := range deps {
			if isLab(p) {
				t.Errorf("%s depends on lab package %s", c.name, p)
			}
		}
	}
	full := map[string]bool{}
	for _, p := range strings.Fields(goTool(t, "list", "-deps", ".")) {
		full[p] = true
	}
	for _, l := range labPackages {
		if !full[l] {
			t.Errorf("the full build does not depend on %s: is labPackages out of date?", l)
		}
	}
}

// helpCommands returns the subcommand names the root's --help lists.
func helpCommands(t *testing.T, bin string) map[string]bool {
	t.Helper()
	r := cli(t, bin, "--help")
	if r.code != 0 {
		t.Fatalf("--help: %+v", r)
	}
	cmds := map[string]bool{}
	in := false
	for _, line := range strings.Split(r.stdout, "\n") {
		switch {
		case line == "Available Commands:":
			in = true
		case in && strings.HasPrefix(line, "  "):
			cmds[strings.Fields(line)[0]] = true
		case in:
			in = false
		}
	}
	return cmds
}

// TestNodeBinaryHelp: the node binary offers the node's commands, under the
// name tapswitch, and not the lab's; the full CLI offers both.
func TestNodeBinaryHelp(t *testing.T) {
	node := filepath.Join(t.TempDir(), "tapswitch")
	goTool(t, "build", "-tags", "nolab", "-o", node, ".")
	nodeCmds := []string{"run", "config", "pod", "ports", "fdb", "arp", "stats", "monitor", "capture", "install-cni"}
	labCmds := []string{"bench", "sim", "demo"}

	got := helpCommands(t, node)
	for _, c := range nodeCmds {
		if !got[c] {
			t.Errorf("node --help does not list %s: %v", c, got)
		}
	}
	for _, c := range labCmds {
		if got[c] {
			t.Errorf("node --help lists lab command %s", c)
		}
	}
	if r := cli(t, node, "sim"); r.code != 1 || !strings.Contains(r.stderr, `tapswitch: unknown command "sim" for "tapswitch"`) {
		t.Errorf("node sim: %+v", r)
	}

	got = helpCommands(t, buildCLI(t))
	for _, c := range append(nodeCmds, labCmds...) {
		if !got[c] {
			t.Errorf("full --help does not list %s: %v", c, got)
		}
	}
}
