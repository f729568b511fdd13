package daemon_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/cmd/internal/nodetest"
	"github.com/tapswitch/tapswitch/internal/crashpoint"
	"github.com/tapswitch/tapswitch/internal/podnet"
	"github.com/tapswitch/tapswitch/netns"
)

// crashPoints are the steps of pod add and delete a crash is injected at
// (crashpoint.Hit calls in the daemon and tap packages).
var crashPoints = []string{
	"add-begun", "add-netns", "add-moved", "add-created", "add-marked", "add-saved",
	"del-begun", "del-tap", "del-deleted", "del-saved",
}

// TestCrashInjection kills a daemon process (SIGKILL, from inside, at a
// named step of a pod add or delete, chosen by a seeded random source),
// starts a new one on the same state, and checks after every start that
// the interrupted operation was finished or undone: every pod is listed
// up, every namespace the daemon made belongs to a listed pod, no intent
// record is left, and the foreign namespace and TAP the test made are
// untouched. At the end the surviving pods talk to each other.
//
// TAPSWITCH_CRASHES sets how many crashes (20 by default; `make crash`
// runs more), TAPSWITCH_CRASH_SEED the seed (logged, so a failure
// reproduces).
func TestCrashInjection(t *testing.T) {
	e := nodetest.New(t)
	crashes := 20
	if v := os.Getenv("TAPSWITCH_CRASHES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("TAPSWITCH_CRASHES=%q: want a positive number", v)
		}
		crashes = n
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("TAPSWITCH_CRASH_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("TAPSWITCH_CRASH_SEED=%q: %v", v, err)
		}
	}
	t.Logf("seed %d (TAPSWITCH_CRASH_SEED=%d reproduces), %d crashes", seed, seed, crashes)
	rng := rand.New(rand.NewPCG(seed, 0))

	cfgPath := e.WriteConfig()

	// Foreign things the daemon must never touch: a namespace with a TAP
	// eth0 of its own, and one with a TAP another instance marked.
	foreign := map[string]string{
		e.Prefix + "foreign": "",
		e.Prefix + "other":   "tapswitch:0123456789abcdef pod=x vlan=1 netns=created",
	}
	for ns, alias := range foreign {
		if _, err := netns.CreateNamed(ns); err != nil {
			t.Fatal(err)
		}
		err := netns.FromPath(netns.PathOf(ns)).Run(func() error {
			l := &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, Mode: netlink.TUNTAP_MODE_TAP,
				Flags: netlink.TUNTAP_MULTI_QUEUE_DEFAULTS}
			if err := netlink.LinkAdd(l); err != nil {
				return err
			}
			for _, fd := range l.Fds {
				fd.Close()
			}
			if alias != "" {
				return netlink.LinkSetAlias(l, alias)
			}
			return nil
		})

		if err != nil {
			t.Fatal(err)
		}
	}
	// Pods of both kinds: named ones whose namespace the daemon makes,
	// and CNI-like ones in namespaces the test made, attached by path.
	type podDef struct {
		name, ns string
		n        int
		spec     api.PodSpec
	}
	var defs []podDef
	for i := 0; i < 6; i++ {
		name := fmt.Sprintf("p%d", i)
		defs = append(defs, podDef{name: name, ns: e.Netns(name), n: 10 + i, spec: api.PodSpec{Name: name, IP: e.CIDR(10 + i)}})
	}
	runtimeNS := map[string]bool{}
	for i := 0; i < 2; i++ {
		name, ns := fmt.Sprintf("c%d", i), fmt.Sprintf("%scni%d", e.Prefix, i)
		if _, err := netns.CreateNamed(ns); err != nil {
			t.Fatal(err)
		}
		runtimeNS[ns] = true
		defs = append(defs, podDef{name: name, ns: ns, n: 20 + i, spec: api.PodSpec{
			Name: name, IP: e.CIDR(20 + i), NetNS: netns.PathOf(ns), ContainerID: fmt.Sprintf("ctr%d", i)}})
	}

	stateDir := e.Cfg.StateDir
	check := func(when string) map[string]bool {
		t.Helper()
		pods, err := e.Client.Pods(bg)
		if err != nil {
			t.Fatalf("%s: pods: %v", when, err)
		}
		up := map[string]bool{}
		nsOf := map[string]bool{}
		for _, p := range pods {
			if p.State != "up" {
				t.Errorf("%s: pod %s is %s (%s), want up", when, p.Name, p.State, p.Reason)
			}
			up[p.Name] = true
			nsOf[filepath.Base(p.Netns)] = true
		}
		for _, ns := range e.Namespaces() {
			if _, ok := foreign[ns]; ok || runtimeNS[ns] || nsOf[ns] {
				continue
			}
			t.Errorf("%s: namespace %s left by the daemon belongs to no pod (pods %v)", when, ns, up)
		}
		for ns := range runtimeNS {
			if _, err := os.Stat(netns.PathOf(ns)); err != nil {
				t.Errorf("%s: the runtime's namespace %s was deleted", when, ns)
			}
		}
		for ns, alias := range foreign {
			var got string
			err := netns.FromPath(netns.PathOf(ns)).Run(func() error {
				l, err := netlink.LinkByName("eth0")
				if err == nil {
					got = l.Attrs().Alias
				}
				return err
			})

			if err != nil || got != alias {
				t.Errorf("%s: foreign %s eth0: alias %q, %v; want it untouched (%q)", when, ns, got, err, alias)
			}
		}
		for _, d := range defs {
			if !up[d.name] && runtimeNS[d.ns] {
				// A runtime namespace without its pod has no eth0 left.
				netns.FromPath(netns.PathOf(d.ns)).Run(func() error {
					if _, err := netlink.LinkByName("eth0"); err == nil {
						t.Errorf("%s: pod %s not listed but its TAP is still in %s", when, d.name, d.ns)
					}
					return nil
				})

			}
		}
		ents, _ := os.ReadDir(stateDir)
		for _, en := range ents {
			if strings.HasPrefix(en.Name(), "intent-") {
				t.Errorf("%s: intent record %s left after the start", when, en.Name())
			}
		}
		if t.Failed() {
			t.FailNow()
		}
		return up
	}

	start := func(crashAt string) (*exec.Cmd, chan struct{}) {
		t.Helper()
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), daemonEnv+"="+cfgPath, "GORACE=halt_on_error=1", crashpoint.Env+"="+crashAt)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		t.Cleanup(func() { cmd.Process.Kill(); <-done })
		deadline := time.Now().Add(15 * time.Second)
		for {
			st, err := e.Client.Status(bg)
			if err == nil && st.PID == cmd.Process.Pid {
				return cmd, done
			}
			select {
			case <-done:
				return cmd, done // crashed while settling the last crash's intent
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("daemon process did not answer within 15s: %v", err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	exited := func(done chan struct{}) bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}

	injected := 0
	for round := 0; injected < crashes; round++ {
		point := crashPoints[rng.IntN(len(crashPoints))]
		at := 1 + rng.IntN(2)
		cmd, done := start(fmt.Sprintf("%s:%d", point, at))
		if exited(done) {
			injected++
			continue
		}
		up := check(fmt.Sprintf("round %d (after %d crashes), start", round, injected))
		for op := 0; op < 12 && !exited(done); op++ {
			d := defs[rng.IntN(len(defs))]
			var err error
			if up[d.name] {
				err = e.Client.DeletePod(bg, d.name)
				if err == nil {
					delete(up, d.name)
				}
			} else {
				_, err = e.Client.AddPod(bg, d.spec)
				if err == nil {
					up[d.name] = true
				}
			}
			if err != nil {
				select {
				case <-done:
				case <-time.After(5 * time.Second):
					t.Fatalf("round %d: %s %s failed and the daemon runs on: %v", round, map[bool]string{true: "del", false: "add"}[up[d.name]], d.name, err)
				}
			}
		}
		if exited(done) {
			injected++
			t.Logf("round %d: crashed at %s:%d", round, point, at)
		} else {
			// The point was not reached within the round: kill -9 from outside.
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
		}
	}
	// A last start without crashes: the state after all of them.
	cmd, _ := start("")
	up := check("final start")
	var names []podDef
	for _, d := range defs {
		if !up[d.name] && len(names)+len(up) < 2 {
			if _, err := e.Client.AddPod(bg, d.spec); err != nil {
				t.Fatal(err)
			}
			up[d.name] = true
		}
	}
	for _, d := range defs {
		if up[d.name] {
			names = append(names, d)
		}
	}
	a, z := names[0], names[len(names)-1]
	r, err := podnet.Ping(context.Background(), a.ns, e.IP(z.n), podnet.PingOptions{Count: 3, Interval: 20 * time.Millisecond, Timeout: 2 * time.Second})
	if err != nil || r.Received() == 0 {
		t.Errorf("ping %s -> %s after %d crashes: %s %v", a.name, z.name, injected, r, err)
	}
	t.Logf("%d crashes injected; %d pods survive; %s -> %s: %s", injected, len(up), a.name, z.name, r)
	cmd.Process.Signal(syscall.SIGTERM)
}
