package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/cmd/internal/nodetest"
	"github.com/tapswitch/tapswitch/internal/podnet"
)

// buildCLI builds this command into the test's temporary directory (the
// second build of a run only links).
func buildCLI(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "tapswitch")
	if out, err := exec.Command(gobin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type result struct {
	code           int
	stdout, stderr string
}

func cli(t *testing.T, bin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var so, se strings.Builder
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	r := result{stdout: so.String(), stderr: se.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestCLIAgainstADaemon drives the subcommands a user types against a
// daemon running in the test, good input and bad.
func TestCLIAgainstADaemon(t *testing.T) {
	e := nodetest.New(t)
	bin := buildCLI(t)
	e.Start()
	s := "--socket=" + e.Cfg.Socket

	for _, c := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"pod", "add", "web-1", "--ip", "10.0.0.300/24", s}, 1, `tapswitch: pod "web-1": ip "10.0.0.300/24": invalid CIDR`},
		{[]string{"pod", "add", "web-1", "--ip", "192.0.2.9/24", s}, 1, `tapswitch: pod "web-1": ip "192.0.2.9/24": outside the pod subnet ` + e.Subnet.String()},
		{[]string{"pod", "add", "Web", "--ip", e.CIDR(7), s}, 1, `tapswitch: pod "Web": invalid name`},
		{[]string{"pod", "add", "web-1", s}, 2, `tapswitch: pod "web-1": --ip is required`},
		{[]string{"pod", "del", "nope", s}, 1, `tapswitch: pod "nope": no such pod`},
		{[]string{"pod", "del", "", s}, 1, `tapswitch: pod name: must not be empty`},
		{[]string{"pod", "add", "", "--ip", e.CIDR(7), s}, 1, `tapswitch: pod name: must not be empty`},
		{[]string{"pod", "add", "web-1", "--ip", e.CIDR(7), "--vlan", "0", s}, 2, `tapswitch: pod "web-1": --vlan 0: want 1-4094 (leave --vlan out for VLAN 1)`},
		{[]string{"fdb", "-o", "yaml", s}, 2, `tapswitch: output "yaml": want table or json`},
		// Refused before the daemon is told anything, by commands that only act too.
		{[]string{"pod", "del", "nope", "-o", "yaml", s}, 2, `tapswitch: output "yaml": want table or json`},
		{[]string{"monitor", "-o", "yaml", s}, 2, `tapswitch: output "yaml": want table or json`},
		{[]string{"bench", "--nice", "-5", "--in-process"}, 2, `tapswitch: --nice sets the daemon child's priority: not with --in-process or --cpuprofile`},
		{[]string{"ports", "--socket", filepath.Join(e.Dir, "none.sock")}, 1, "tapswitch: daemon not running: dial unix " + filepath.Join(e.Dir, "none.sock")},
	} {
		r := cli(t, bin, c.args...)
		if r.code != c.code || !strings.HasPrefix(r.stderr, c.stderr) {
			t.Errorf("tapswitch %s: exit %d, stderr %q; want exit %d, stderr %q", strings.Join(c.args, " "), r.code, r.stderr, c.code, c.stderr)
		}
	}
	if ns := e.Namespaces(); len(ns) != 0 {
		t.Fatalf("refused adds left namespaces: %v", ns)
	}

	r := cli(t, bin, "pod", "add", "web-1", "--ip", e.CIDR(7), s)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "pod web-1: netns "+e.Netns("web-1")) {
		t.Fatalf("pod add: %+v", r)
	}
	// One exchange with the gateway, for the ARP listings to show.
	if res, err := podnet.Ping(context.Background(), e.Netns("web-1"), e.IP(1), podnet.PingOptions{Count: 1, Timeout: 2 * time.Second}); err != nil || res.Received() != 1 {
		t.Fatalf("ping the gateway from web-1: %+v, %v", res, err)
	}
	r = cli(t, bin, "ports", "-o", "json", s)
	var ports []api.Port
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ports) != nil || len(ports) != 2 {
		t.Fatalf("ports -o json: %+v", r)
	}
	// Each listing, table and JSON, shows the pod (or its port) and the
	// gateway: an exit status of 0 alone would pass with empty output.
	var (
		fdbEnts []api.FDBEntry
		neigh   []api.Neighbour
		stats   api.Stats
		pods    []api.Pod
	)
	for _, c := range []struct {
		args []string
		ok   func(out string) bool
	}{
		{[]string{"ports"}, func(out string) bool {
			return strings.HasPrefix(out, "ID ") && strings.Contains(out, " web-1 ") && strings.Contains(out, " "+e.GwIf+" ")
		}},
		{[]string{"arp"}, func(out string) bool { return strings.Contains(out, e.IP(7).String()+" dev web-1 lladdr ") }},
		{[]string{"stats"}, func(out string) bool {
			return strings.HasPrefix(out, "switch   test") && strings.Contains(out, "pods up 1, gone 0")
		}},
		{[]string{"pod", "list"}, func(out string) bool {
			return strings.HasPrefix(out, "NAME ") && strings.Contains(out, "web-1 ") && strings.Contains(out, " "+e.CIDR(7)+" ")
		}},
		{[]string{"fdb", "-o", "json"}, func(out string) bool {
			if json.Unmarshal([]byte(out), &fdbEnts) != nil {
				return false
			}
			for _, f := range fdbEnts {
				if f.PortName == e.GwIf {
					return true
				}
			}
			return false
		}},
		{[]string{"arp", "-o", "json"}, func(out string) bool {
			if json.Unmarshal([]byte(out), &neigh) != nil {
				return false
			}
			for _, n := range neigh {
				if n.IP == e.IP(7) && n.PortName == "web-1" {
					return true
				}
			}
			return false
		}},
		{[]string{"stats", "-o", "json"}, func(out string) bool {
			return json.Unmarshal([]byte(out), &stats) == nil && stats.Switch == "test" && stats.Ports == 2 && stats.PodsUp == 1
		}},
		{[]string{"pod", "list", "-o", "json"}, func(out string) bool {
			return json.Unmarshal([]byte(out), &pods) == nil && len(pods) == 1 && pods[0].Name == "web-1" && pods[0].IP == e.CIDR(7)
		}},
	} {
		if r := cli(t, bin, append(c.args, s)...); r.code != 0 || !c.ok(r.stdout) {
			t.Errorf("tapswitch %s: %+v", strings.Join(c.args, " "), r)
		}
	}
	if r := cli(t, bin, "fdb", s); !strings.Contains(r.stdout, " dev "+e.GwIf+" vlan 1 master test permanent") {
		t.Errorf("fdb: %q", r.stdout)
	}
	if r := cli(t, bin, "pod", "del", "web-1", s); r.code != 0 {
		t.Fatalf("pod del: %+v", r)
	}
	if ns := e.Namespaces(); len(ns) != 0 {
		t.Errorf("pod del left the namespace it made: %v", ns)
	}
}

func TestRunRejectsABadConfig(t *testing.T) {
	bin := buildCLI(t)
	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte("fdb:\n  policy: lru\n"), 0o600)
	r := cli(t, bin, "run", "--config", path)
	if r.code != 2 || !strings.Contains(r.stderr, "fdb.policy") {
		t.Errorf("run with a bad config: %+v", r)
	}
}

// TestCLIDualStack: `pod add --ip` takes one address of each family,
// repeated or comma-separated; the listings show both; the errors name the
// bad value, and a name held by a live pod says how to free it.
func TestCLIDualStack(t *testing.T) {
	e := nodetest.New(t)
	e.DualStack()
	bin := buildCLI(t)
	e.Start()
	s := "--socket=" + e.Cfg.Socket
	for _, args := range [][]string{
		{"pod", "add", "d1", "--ip", e.CIDR(8), "--ip", e.CIDR6(8), s},
		{"pod", "add", "d2", "--ip", e.CIDR(9) + "," + e.CIDR6(9), s},
	} {
		r := cli(t, bin, args...)
		if r.code != 0 || !strings.Contains(r.stdout, " eth0 "+args[4][:strings.IndexByte(args[4], '/')]) {
			t.Fatalf("tapswitch %s: %+v", strings.Join(args, " "), r)
		}
	}
	r := cli(t, bin, "pod", "list", s)
	if r.code != 0 || !strings.Contains(r.stdout, " "+e.CIDR(8)+","+e.CIDR6(8)+" ") || !strings.Contains(r.stdout, " "+e.CIDR(9)+","+e.CIDR6(9)+" ") {
		t.Errorf("pod list:\n%s", r.stdout)
	}
	r = cli(t, bin, "pod", "list", "-o", "json", s)
	var pods []api.Pod
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &pods) != nil || len(pods) != 2 ||
		pods[0].IP != e.CIDR(8) || len(pods[0].IPs) != 2 || pods[0].IPs[1] != e.CIDR6(8) {
		t.Errorf("pod list -o json: %+v", r)
	}
	if res, err := podnet.Ping(context.Background(), e.Netns("d1"), e.IP6(9), podnet.PingOptions{Count: 2, Timeout: 3 * time.Second}); err != nil || res.Received() != 2 {
		t.Errorf("IPv6 ping d1 -> d2: %v %v", res, err)
	}
	for _, c := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"pod", "add", "x", "--ip", e.CIDR(10), "--ip", e.CIDR(11), s}, `tapswitch: pod "x": ip "` + e.CIDR(11) + `": a second IPv4 address (at most one of each family)`},
		{[]string{"pod", "add", "x", "--ip", e.CIDR6(10), s}, `tapswitch: pod "x": ip "` + e.CIDR6(10) + `": an IPv4 address in the pod subnet`},
		{[]string{"pod", "add", "x", "--ip", e.CIDR(10), "--ip", "fd00:1::5/64", s}, `tapswitch: pod "x": ip "fd00:1::5/64": outside the pod subnet ` + e.Subnet6.String()},
		{[]string{"pod", "add", "x", "--ip", e.CIDR(10), "--ip", e.CIDR6(8), s}, `tapswitch: pod "x": ip ` + e.IP6(8).String() + `: already used by pod "d1"; ` + "`tapswitch pod del d1` frees it"},
		{[]string{"pod", "add", "d1", "--ip", e.CIDR(10), s}, `tapswitch: pod "d1": already exists (up, netns "` + e.Netns("d1") + `"); ` + "`tapswitch pod del d1` frees it"},
	} {
		r := cli(t, bin, c.args...)
		if r.code != 1 || !strings.HasPrefix(r.stderr, c.stderr) {
			t.Errorf("tapswitch %s: exit %d, stderr %q; want %q", strings.Join(c.args, " "), r.code, r.stderr, c.stderr)
		}
	}
}
