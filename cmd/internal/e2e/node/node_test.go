package node

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/cmd/internal/daemon"
	"github.com/tapswitch/tapswitch/cmd/internal/nodetest"
	"github.com/tapswitch/tapswitch/internal/podnet"
	"github.com/tapswitch/tapswitch/netns"
)

var bg = context.Background()

// TestThreePodsOnOneSwitch is the cbr0 replacement end to end: the first
// ARP floods and teaches the switch, then unicast leaves on one port; every
// pair and the gateway answer; 64 MiB cross each way intact; `pod del`
// flushes the pod's FDB entries.
func TestThreePodsOnOneSwitch(t *testing.T) {
	nodetest.ReadModes(t, func(t *testing.T, e *nodetest.Env) {
		e.Start()
		pods := []api.Pod{e.AddQuietPod("p1", 2), e.AddQuietPod("p2", 3), e.AddQuietPod("p3", 4)}

		t.Run("ARPFloodsThenUnicast", func(t *testing.T) {
			c0 := e.Ports(t)
			e.MustPing(t, "p1", 3, 1)
			// The ping can finish before the reader that flooded the
			// ARP request has written its last copies (p2's answer
			// races the writes to p3 and the gateway): wait for them,
			// then count exactly.
			c1 := e.Ports(t)
			for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); c1 = e.Ports(t) {
				if c1["p3"].Counters.TxFrames > c0["p3"].Counters.TxFrames && c1[e.GwIf].Counters.TxFrames > c0[e.GwIf].Counters.TxFrames {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if d := c1["p1"].Counters.Flooded - c0["p1"].Counters.Flooded; d != 1 {
				t.Errorf("p1 flooded %d frames for one ping, want 1 (its ARP request)", d)
			}
			if d := c1["p3"].Counters.TxFrames - c0["p3"].Counters.TxFrames; d != 1 {
				t.Errorf("p3 was sent %d frames, want 1 (the flooded ARP request)", d)
			}
			if d := c1[e.GwIf].Counters.TxFrames - c0[e.GwIf].Counters.TxFrames; d != 1 {
				t.Errorf("the gateway was sent %d frames, want 1 (the flooded ARP request)", d)
			}
			if d := c1["p2"].Counters.Flooded - c0["p2"].Counters.Flooded; d != 0 {
				t.Errorf("p2 flooded %d frames, want 0 (its ARP reply and echo reply are unicast)", d)
			}
			tab := e.FDB(t)
			for _, p := range pods[:2] {
				x, ok := tab[nodetest.MAC(t, p)]
				if !ok || x.PortName != p.Name || x.Kind != "learned" {
					t.Errorf("fdb entry for %s (%s): %+v, want learned on %s", p.Name, p.MAC, x, p.Name)
				}
			}

			const n = 20
			e.MustPing(t, "p1", 3, n)
			c2 := e.Ports(t)
			if d := c2["p1"].Counters.Flooded - c1["p1"].Counters.Flooded; d != 0 {
				t.Errorf("warm table: p1 flooded %d frames, want 0", d)
			}
			if d := c2["p3"].Counters.TxFrames - c1["p3"].Counters.TxFrames; d != 0 {
				t.Errorf("warm table: p3 was sent %d frames of p1<->p2 traffic, want 0", d)
			}
			if d := c2["p2"].Counters.TxFrames - c1["p2"].Counters.TxFrames; d < n {
				t.Errorf("p2 was sent %d frames, want at least %d", d, n)
			}
		})

		t.Run("PingEachPairAndGateway", func(t *testing.T) {
			for i, p := range pods {
				for j := range pods {
					if i != j {
						e.MustPing(t, p.Name, j+2, 2)
					}
				}
				e.MustPing(t, p.Name, 1, 2) // the gateway
			}
			// Every live port's listing carries its TAP's own drop count.
			for name, p := range e.Ports(t) {
				if p.DeviceDrops == nil {
					t.Errorf("port %s: no device_drops in the listing", name)
				}
			}
		})

		t.Run("Transfer64MiBEachWay", func(t *testing.T) {
			for _, dir := range [][2]int{{0, 1}, {1, 0}} {
				from, to := pods[dir[0]], pods[dir[1]]
				r, err := podnet.Transfer(bg, from.Netns, to.Netns, e.IP(dir[1]+2), 64<<20)
				if err != nil {
					t.Fatal(err)
				}
				if !r.Match() || r.Bytes != 64<<20 {
					t.Fatalf("%s -> %s: %s", from.Name, to.Name, r)
				}
				t.Logf("%s -> %s: %s", from.Name, to.Name, r)
			}
		})

		t.Run("PodDelFlushesItsEntries", func(t *testing.T) {
			e.MustPing(t, "p3", 2, 1) // make sure p3 is in the table
			if x, ok := e.FDB(t)[nodetest.MAC(t, pods[2])]; !ok || x.PortName != "p3" {
				t.Fatalf("p3 not learned: %+v", x)
			}
			if err := e.Client.DeletePod(bg, "p3"); err != nil {
				t.Fatal(err)
			}
			for m, x := range e.FDB(t) {
				if x.Port == pods[2].Port || m == nodetest.MAC(t, pods[2]) {
					t.Errorf("entry of deleted pod left: %+v", x)
				}
			}
			for _, n := range mustNeighbours(t, e) {
				if n.Port == pods[2].Port {
					t.Errorf("neighbour of deleted pod left: %+v", n)
				}
			}
			if _, ok := e.Ports(t)["p3"]; ok {
				t.Error("p3 still listed in ports")
			}
			// The namespace was the test's, not the daemon's: it stays.
			if _, err := netlink.LinkByName(e.GwIf); err != nil {
				t.Error(err)
			}
			found := false
			for _, ns := range e.Namespaces() {
				found = found || ns == e.Netns("p3")
			}
			if !found {
				t.Error("pod del removed a namespace the daemon did not create")
			}
			e.MustPing(t, "p1", 3, 2) // the others still talk
		})
	})
}

func mustNeighbours(t *testing.T, e *nodetest.Env) []api.Neighbour {
	t.Helper()
	ns, err := e.Client.Neighbours(bg)
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// TestTAPDeletedUnderTraffic deletes one pod's TAP from inside its
// namespace while two others transfer: the port leaves the switch and is
// reported gone; the transfer and the other pods carry on.
func TestTAPDeletedUnderTraffic(t *testing.T) {
	nodetest.ReadModes(t, func(t *testing.T, e *nodetest.Env) {
		e.Start()
		e.AddQuietPod("p1", 2)
		e.AddQuietPod("p2", 3)
		p3 := e.AddQuietPod("p3", 4)
		e.MustPing(t, "p3", 2, 1)

		done := make(chan error, 1)
		go func() {
			r, err := podnet.Transfer(bg, e.Netns("p1"), e.Netns("p2"), e.IP(3), 512<<20)
			if err == nil && !r.Match() {
				err = errors.New("sha256 differs")
			}
			done <- err
		}()
		time.Sleep(150 * time.Millisecond)
		err := netns.FromPath(netns.PathOf(e.Netns("p3"))).Run(func() error {
			l, err := netlink.LinkByName("eth0")
			if err != nil {
				return err
			}
			return netlink.LinkDel(l)
		})

		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			p, err := e.Client.Pod(bg, "p3")
			if err != nil {
				t.Fatal(err)
			}
			if p.State == api.PodGone {
				t.Logf("p3: %s (%s)", p.State, p.Reason)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("p3 still %q 5s after its TAP was deleted", p.State)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := <-done; err != nil {
			t.Fatalf("transfer p1 -> p2 across the deletion: %v", err)
		}
		ports := e.Ports(t)
		if ports["p3"].State != api.PodGone {
			t.Errorf("ports: p3 is %q, want gone", ports["p3"].State)
		}
		if ports["p3"].Counters.RxFrames == 0 {
			t.Error("ports: gone p3 lost the counters it had")
		}
		for _, x := range e.FDB(t) {
			if x.Port == p3.Port {
				t.Errorf("entry on the gone port left: %+v", x)
			}
		}
		e.MustPing(t, "p1", 3, 3)
		e.MustPing(t, "p2", 1, 3)
		if err := e.Client.DeletePod(bg, "p3"); err != nil {
			t.Fatalf("pod del of a gone pod: %v", err)
		}
	})
}

// TestRestartReattaches stops the daemon, keeping the pods, starts a new one
// from the same state, and checks that it re-attached without
// reconfiguring and that traffic resumes.
func TestRestartReattaches(t *testing.T) {
	nodetest.ReadModes(t, func(t *testing.T, e *nodetest.Env) {
		e.Start()
		e.AddQuietPod("p1", 2)
		e.AddQuietPod("p2", 3)
		e.MustPing(t, "p1", 3, 2)

		// A second daemon on the same state must not touch the first's pods.
		second, err := daemon.New(e.Cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := second.Start(bg); err == nil || !strings.Contains(err.Error(), "in use by another tapswitch daemon") {
			t.Fatalf("second daemon on the same state dir: %v", err)
		}
		second.Close(false)
		e.MustPing(t, "p1", 3, 2)
		e.Stop(false)

		if _, err := e.Client.Status(bg); err == nil {
			t.Fatal("the API answers with the daemon stopped")
		}
		e.Start()
		st, err := e.Client.Status(bg)
		if err != nil {
			t.Fatal(err)
		}
		if st.Reattached != 2 {
			t.Errorf("re-attached %d pods, want 2", st.Reattached)
		}
		pods, _ := e.Client.Pods(bg)
		for _, p := range pods {
			if p.State != api.PodUp {
				t.Errorf("after restart %s is %s (%s)", p.Name, p.State, p.Reason)
			}
		}
		e.MustPing(t, "p1", 3, 3)
		e.MustPing(t, "p2", 1, 3)
		r, err := podnet.Transfer(bg, e.Netns("p2"), e.Netns("p1"), e.IP(2), 16<<20)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("after restart p2 -> p1: %s", r)
	})
}
