package daemon_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/cmd/internal/nodetest"
	"github.com/tapswitch/tapswitch/cmd/internal/state"
	"github.com/tapswitch/tapswitch/netns"
)

// TestLostStateFileAdoptsMarkedPods: a daemon that starts with its state
// file removed, or replaced by "{}", finds its pods by the marks on their
// TAPs and re-attaches them (VLAN, namespace ownership and container ID
// included); they keep forwarding, and `pod del` deletes them as before:
// the namespace it made, only the TAP in the runtime's one.
func TestLostStateFileAdoptsMarkedPods(t *testing.T) {
	e := nodetest.New(t)
	e.Start()
	e.AddQuietPod("q1", 2)
	e.AddQuietPod("q2", 3)
	if _, err := e.Client.AddPod(bg, api.PodSpec{Name: "made", IP: e.CIDR(4), VLAN: 7}); err != nil {
		t.Fatal(err)
	}
	rt := e.Prefix + "rt"
	if _, err := netns.CreateNamed(rt); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.AddPod(bg, api.PodSpec{Name: "cni", IP: e.CIDR(5), NetNS: netns.PathOf(rt), ContainerID: "abc123", Network: "kube"}); err != nil {
		t.Fatal(err)
	}
	before, err := e.Client.Pods(bg)
	if err != nil {
		t.Fatal(err)
	}
	statePath := filepath.Join(e.Cfg.StateDir, state.FileName)
	for _, lose := range []struct {
		name string
		do   func() error
	}{
		{"removed", func() error { return os.Remove(statePath) }},
		{"{}", func() error { return os.WriteFile(statePath, []byte("{}"), 0o600) }},
		// The whole state directory lost: the operator puts back the
		// instance ID the gateway's alias shows (docs/operations.md).
		{"dir lost, instance from the gateway alias", func() error {
			l, err := netlink.LinkByName(e.GwIf)
			if err != nil {
				return err
			}
			id, ok := strings.CutPrefix(l.Attrs().Alias, "tapswitch:")
			if !ok {
				return fmt.Errorf("gateway alias %q", l.Attrs().Alias)
			}
			if err := os.RemoveAll(e.Cfg.StateDir); err != nil {
				return err
			}
			if err := os.MkdirAll(e.Cfg.StateDir, 0o700); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(e.Cfg.StateDir, state.InstanceName), []byte(id+"\n"), 0o600)
		}},
	} {
		e.Stop(false)
		if err := lose.do(); err != nil {
			t.Fatal(err)
		}
		e.Start()
		after, err := e.Client.Pods(bg)
		if err != nil {
			t.Fatal(err)
		}
		if len(after) != len(before) {
			t.Fatalf("state file %s: %d pods after the start, want %d: %+v", lose.name, len(after), len(before), after)
		}
		for i, p := range after {
			b := before[i]
			if p.Name != b.Name || p.State != "up" || p.IP != b.IP || p.MAC != b.MAC || p.VLAN != b.VLAN ||
				p.Netns != b.Netns || p.ContainerID != b.ContainerID || p.Network != b.Network {
				t.Errorf("state file %s: pod %d adopted as %+v, was %+v", lose.name, i, p, b)
			}
		}
		e.MustPing(t, "q1", 3, 2)
	}
	// pod del of adopted pods: the namespace the daemon made goes, the
	// runtime's stays without the TAP.
	for _, name := range []string{"made", "cni"} {
		if err := e.Client.DeletePod(bg, name); err != nil {
			t.Fatalf("pod del %s after adoption: %v", name, err)
		}
	}
	if _, err := os.Stat(netns.PathOf(e.Netns("made"))); err == nil {
		t.Error("pod del of an adopted pod left the namespace the daemon made")
	}
	netns.FromPath(netns.PathOf(rt)).Run(func() error {
		if _, err := netlink.LinkByName("eth0"); err == nil {
			t.Error("pod del of an adopted CNI pod left its TAP")
		}
		return nil
	})

	if _, err := os.Stat(netns.PathOf(rt)); err != nil {
		t.Error("pod del of an adopted CNI pod deleted the runtime's namespace")
	}
}

// TestPodDelLeavesForeignTAP: `pod del` of a pod whose TAP another daemon
// instance marked (its namespace reused by another tapswitch) forgets the
// pod and leaves the TAP and the namespace to their owner.
func TestPodDelLeavesForeignTAP(t *testing.T) {
	e := nodetest.New(t)
	e.Start()
	e.AddQuietPod("f1", 2)
	alias := "tapswitch:0123456789abcdef pod=f1 vlan=1 netns=named"
	err := netns.FromPath(netns.PathOf(e.Netns("f1"))).Run(func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		return netlink.LinkSetAlias(l, alias)
	})

	if err != nil {
		t.Fatal(err)
	}
	if err := e.Client.DeletePod(bg, "f1"); err != nil {
		t.Fatalf("pod del of a TAP another instance marked: %v", err)
	}
	if _, err := e.Client.Pod(bg, "f1"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("pod still listed after pod del: %v", err)
	}
	netns.FromPath(netns.PathOf(e.Netns("f1"))).Run(func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil || l.Attrs().Alias != alias {
			t.Errorf("the foreign TAP after pod del: %v", err)
		}
		return nil
	})

}

// TestReattachChecksMarks: a pod of the state file whose TAP another
// instance marked is not re-attached (listed gone, naming the mark); one
// an older version left unmarked is re-attached and marked.
func TestReattachChecksMarks(t *testing.T) {
	e := nodetest.New(t)
	e.Start()
	e.AddQuietPod("r1", 2)
	e.AddQuietPod("r2", 3)
	setAlias := func(alias string) {
		t.Helper()
		err := netns.FromPath(netns.PathOf(e.Netns("r1"))).Run(func() error {
			l, err := netlink.LinkByName("eth0")
			if err != nil {
				return err
			}
			return netlink.LinkSetAlias(l, alias)
		})

		if err != nil {
			t.Fatal(err)
		}
	}
	alias := func() string {
		var a string
		netns.FromPath(netns.PathOf(e.Netns("r1"))).Run(func() error {
			l, err := netlink.LinkByName("eth0")
			if err == nil {
				a = l.Attrs().Alias
			}
			return err
		})

		return a
	}
	own := alias()
	e.Stop(false)
	setAlias("tapswitch:0123456789abcdef pod=r1 vlan=1 netns=named")
	e.Start()
	p, err := e.Client.Pod(bg, "r1")
	if err != nil || p.State != "gone" || !strings.Contains(p.Reason, "marked by another tapswitch daemon") {
		t.Errorf("pod with a foreign mark after restart: %+v %v, want gone naming the mark", p, err)
	}
	if p, err := e.Client.Pod(bg, "r2"); err != nil || p.State != "up" {
		t.Errorf("the other pod: %+v %v", p, err)
	}
	e.Stop(false)
	setAlias("") // as an older tapswitch left it
	e.Start()
	if p, err := e.Client.Pod(bg, "r1"); err != nil || p.State != "up" {
		t.Errorf("unmarked pod after restart: %+v %v, want up", p, err)
	}
	if a := alias(); a != own {
		t.Errorf("unmarked TAP re-attached with alias %q, want %q", a, own)
	}
	e.MustPing(t, "r1", 3, 2)
}
