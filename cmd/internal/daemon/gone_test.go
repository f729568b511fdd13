package daemon_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/cmd/internal/config"
	"github.com/tapswitch/tapswitch/cmd/internal/nodetest"
	"github.com/tapswitch/tapswitch/netns"
)

// goneAfterRestart stops the daemon, deletes the namespaces of pods, and
// starts it again: the pods are listed gone, as after a node whose
// runtime removed its sandboxes while the daemon was down.
func goneAfterRestart(t *testing.T, e *nodetest.Env, nets ...string) {
	t.Helper()
	e.Stop(false)
	for _, ns := range nets {
		if err := netns.DeleteNamed(ns); err != nil {
			t.Fatal(err)
		}
	}
	e.Start()
	for _, ns := range nets {
		found := false
		for _, p := range pods(t, e) {
			if p.Netns == ns || p.Netns == netns.PathOf(ns) {
				found = true
				if p.State != api.PodGone {
					t.Fatalf("pod %s in deleted netns %s: %s, want gone", p.Name, ns, p.State)
				}
			}
		}
		if !found {
			t.Fatalf("no pod in netns %s", ns)
		}
	}
}

func pods(t *testing.T, e *nodetest.Env) map[string]api.Pod {
	t.Helper()
	ps, err := e.Client.Pods(bg)
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string]api.Pod, len(ps))
	for _, p := range ps {
		m[p.Name] = p
	}
	return m
}

// reclaimLogged finds the info line of gone pod name reclaimed by pod by.
func reclaimLogged(t *testing.T, e *nodetest.Env, name, by, held string) {
	t.Helper()
	for _, en := range e.Logs.FilterMessage("gone pod reclaimed").All() {
		f := en.ContextMap()
		// held lists everything the gone pod held, "; " between.
		h, _ := f["held"].(string)
		if f["pod"] == name && f["by"] == by && slices.Contains(strings.Split(h, "; "), held) && f["reason"] != "" {
			return
		}
	}
	t.Errorf("no info line \"gone pod reclaimed\" for pod %s by %s (held %s); logged: %v", name, by, held, e.Logs.FilterMessage("gone pod reclaimed").All())
}

// TestGonePodNameReclaimed: a pod whose namespace vanished while the
// daemon was down no longer blocks its name: `pod add` of the name
// replaces it (logged), the new pod works.
func TestGonePodNameReclaimed(t *testing.T) {
	e := nodetest.New(t)
	e.CaptureLogs()
	e.Start()
	e.AddQuietPod("a", 2)
	e.AddQuietPod("b", 3)
	goneAfterRestart(t, e, e.Netns("a"))

	p := e.AddQuietPod("a", 4) // a new namespace and another address
	if p.State != api.PodUp || p.IP != e.CIDR(4) {
		t.Fatalf("re-added pod: %+v", p)
	}
	reclaimLogged(t, e, "a", "a", "name")
	e.MustPing(t, "a", 3, 2)
	e.MustPing(t, "a", 1, 2)
	if ps := pods(t, e); len(ps) != 2 || ps["a"].IP != e.CIDR(4) {
		t.Errorf("pods after the reclaim: %+v", ps)
	}
}

// TestGonePodAddressReclaimed: a runtime's pod (a namespace path, a
// container ID) whose namespace vanished while the daemon was down holds an
// address host-local hands out again; the next pod's add for that address
// succeeds, and the gone pod is gone from the listings.
func TestGonePodAddressReclaimed(t *testing.T) {
	e := nodetest.New(t)
	e.CaptureLogs()
	e.Start()
	mk := func(name string) string {
		if _, err := netns.CreateNamed(e.Netns(name)); err != nil {
			t.Fatal(err)
		}
		return netns.PathOf(e.Netns(name))
	}
	old := mk("old")
	if _, err := e.Client.AddPod(bg, api.PodSpec{Name: "cni-old", IP: e.CIDR(5), NetNS: old, ContainerID: "0ld1", Network: "n"}); err != nil {
		t.Fatal(err)
	}
	goneAfterRestart(t, e, e.Netns("old"))

	neu := mk("new")
	p, err := e.Client.AddPod(bg, api.PodSpec{Name: "cni-new", IP: e.CIDR(5), NetNS: neu, ContainerID: "new1", Network: "n"})
	if err != nil {
		t.Fatalf("add for the gone pod's address: %v", err)
	}
	if p.State != api.PodUp || p.IP != e.CIDR(5) {
		t.Fatalf("new pod: %+v", p)
	}
	reclaimLogged(t, e, "cni-old", "cni-new", "ip "+e.IP(5).String())
	if _, ok := pods(t, e)["cni-old"]; ok {
		t.Error("the gone pod is still listed")
	}
	e.MustPing(t, "new", 1, 2)
	ports := e.Ports(t)
	if _, ok := ports["cni-old"]; ok {
		t.Error("the gone pod's port is still listed")
	}

	// A live pod's address: refused, naming the holder and the way out.
	_, err = e.Client.AddPod(bg, api.PodSpec{Name: "x", IP: e.CIDR(5)})
	want := `pod "x": ip ` + e.IP(5).String() + `: already used by pod "cni-new" (container new1); ` + "`tapswitch pod del cni-new` frees it"
	if !errors.Is(err, api.ErrConflict) || err == nil || err.Error() != want {
		t.Errorf("add for a live pod's address: %v, want %q", err, want)
	}
	_, err = e.Client.AddPod(bg, api.PodSpec{Name: "cni-new", IP: e.CIDR(9)})
	if !errors.Is(err, api.ErrConflict) || err == nil || !strings.Contains(err.Error(), "already exists (up, netns \""+neu+"\", container new1); `tapswitch pod del cni-new` frees it") {
		t.Errorf("add of a live pod's name: %v", err)
	}
}

// TestGonePodDeleted: `pod del` removes a gone pod (its namespace gone
// while the daemon was down, or while it ran), and the address is free.
func TestGonePodDeleted(t *testing.T) {
	e := nodetest.New(t)
	e.Start()
	e.AddQuietPod("a", 2)
	e.AddQuietPod("b", 3)
	goneAfterRestart(t, e, e.Netns("a"))
	if err := e.Client.DeletePod(bg, "a"); err != nil {
		t.Fatalf("pod del of a gone pod: %v", err)
	}
	if _, ok := pods(t, e)["a"]; ok {
		t.Error("gone pod listed after pod del")
	}
	if err := e.Client.DeletePod(bg, "a"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("second pod del: %v, want not found", err)
	}
	e.AddQuietPod("c", 2)
	e.MustPing(t, "c", 3, 2)
}

// TestGoneStaticPodMadeAgain: a static pod whose namespace vanished while
// the daemon was down is made again at the next start, not left gone.
func TestGoneStaticPodMadeAgain(t *testing.T) {
	e := nodetest.New(t)
	e.Cfg.Pods = []config.PodSpec{{Name: "s", IP: e.CIDR(6)}}
	e.Start()
	if p := pods(t, e)["s"]; p.State != api.PodUp {
		t.Fatalf("static pod: %+v", p)
	}
	e.Stop(false)
	if err := netns.DeleteNamed(e.Netns("s")); err != nil {
		t.Fatal(err)
	}
	e.Start()
	if p := pods(t, e)["s"]; p.State != api.PodUp || p.IP != e.CIDR(6) {
		t.Fatalf("static pod after its namespace vanished: %+v", p)
	}
	e.MustPing(t, "s", 1, 2)
}
