package bench

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/tapswitch/tapswitch/internal/testenv"
)

// TestOVS builds the Open vSwitch userspace topology, checks that data
// crosses it intact, measures a second of single-stream TCP, and checks
// that Close leaves neither bridge, namespaces nor TAPs behind. It needs a
// running ovs-vswitchd (`make ovs`), which CI does not install.
func TestOVS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and an Open vSwitch bridge")
	}
	if testing.Short() {
		t.Skip("builds an Open vSwitch topology and runs traffic for seconds")
	}
	if err := OVSAvailable(); err != nil {
		t.Skipf("Open vSwitch unavailable: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	prefix := testPrefix(t)
	sub, err := testenv.FreeSubnet(253)
	if err != nil {
		t.Fatal(err)
	}
	o, err := BuildOVS(ctx, prefix, sub, 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := o.Close(); err != nil {
			t.Errorf("ovs close: %v", err)
		}
	})
	if o.SwitchPID() <= 0 {
		t.Errorf("SwitchPID %d: want ovs-vswitchd's", o.SwitchPID())
	}
	ps := o.Pods()
	for _, f := range []Flow{{ps[0], ps[1]}, {ps[2], ps[0]}} {
		sendIntact(t, ctx, f, 16<<20)
	}
	if _, err := PingRTT(ctx, Flow{ps[1], ps[2]}, 3, 10*time.Millisecond); err != nil {
		t.Error(err)
	}
	if err := StaticNeighbours(ps); err != nil {
		t.Fatal(err)
	}
	tp, err := TCPThroughput(ctx, AllPairs(ps), 300*time.Millisecond, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tp.Bytes == 0 {
		t.Fatal("ovs: no bytes arrived in 1 s")
	}
	t.Logf("ovs: TCP all pairs of 3 pods %.2f Gbit/s", tp.Gbps())
	if err := o.Close(); err != nil {
		t.Errorf("ovs close: %v", err)
	}
	if left := leftovers(t, prefix); len(left) > 0 {
		t.Errorf("namespaces left behind after Close: %v", left)
	}
	// The TAPs (prefix+"op"+i) went into the pods' namespaces, but one
	// ovs-vswitchd recreated, or never moved, would be in the host's.
	links, err := netlink.LinkList()
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		t.Fatal(err)
	}
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, prefix) {
			t.Errorf("link %s (%s) left behind after Close", l.Attrs().Name, l.Type())
		}
	}
	out, err := vsctl("list-br")
	if err != nil {
		t.Fatal(err)
	}
	for _, br := range strings.Fields(out) {
		if strings.HasPrefix(br, prefix) {
			t.Errorf("ovs bridge %s left behind after Close", br)
		}
	}
}

// TestSweepOVS checks that Sweep deletes a run's OVS bridge, as after a
// bench that died before its Close, and leaves a bridge of another prefix.
func TestSweepOVS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates Open vSwitch bridges")
	}
	if err := OVSAvailable(); err != nil {
		t.Skipf("Open vSwitch unavailable: %v", err)
	}
	prefix, other := NewPrefix(), NewPrefix()
	for prefix == other {
		other = NewPrefix()
	}
	t.Cleanup(func() {
		for _, p := range []string{prefix, other} {
			if err := Sweep(p); err != nil {
				t.Errorf("sweep: %v", err)
			}
		}
	})
	for _, br := range []string{prefix + "obr", other + "obr"} {
		if _, err := vsctl("add-br", br, "--", "set", "bridge", br, "datapath_type=netdev"); err != nil {
			t.Fatal(err)
		}
	}
	if err := Sweep(prefix); err != nil {
		t.Fatal(err)
	}
	out, err := vsctl("list-br")
	if err != nil {
		t.Fatal(err)
	}
	brs := strings.Fields(out)
	for _, br := range brs {
		if strings.HasPrefix(br, prefix) {
			t.Errorf("bridge %s survived Sweep(%q)", br, prefix)
		}
	}
	if !strings.Contains(" "+strings.Join(brs, " ")+" ", " "+other+"obr ") {
		t.Errorf("Sweep(%q) deleted %sobr too; bridges now: %v", prefix, other, brs)
	}
}

// TestSweepOVSStaleSocket is the machine on which Open vSwitch once ran and
// no longer does: its db.sock file is still there, but nothing listens on
// it. Sweep has nothing to delete there and must say so by succeeding, not
// fail every test's clean-up with ovs-vsctl's "Connection refused" (CI did,
// on a machine restored from a snapshot of one that had run `make ovs`).
func TestSweepOVSStaleSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "db.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("the stale socket file must stay: %v", err)
	}
	t.Setenv("OVS_RUNDIR", dir)
	if err := sweepOVS(NewPrefix()); err != nil {
		t.Fatalf("sweep with a stale %s: %v", sock, err)
	}
}
