package hostile

import (
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/cmd/internal/nodetest"
	"github.com/tapswitch/tapswitch/internal/testenv"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

// TestMACFloodLockedPodMAC: with switch.lock_pod_mac, a pod flooding random
// source MACs (from a packet socket that bypasses the qdisc, as an attacker
// with CAP_NET_RAW would) has every one of those frames dropped at its own
// TAP, in its own kernel: the switch reads none, learns none, floods none;
// the victims keep their entries and talk, and the flooder itself still
// talks from its own MAC. (The switch's own check, the second line, is
// tested with in-memory ports in package vswitch.)
func TestMACFloodLockedPodMAC(t *testing.T) {
	e := nodetest.New(t)
	e.Cfg.FDB.Limit = 1024
	e.Cfg.FDB.Policy = "evict-fair"
	e.Cfg.Switch.LockPodMAC = true
	d := e.Start()
	a, b := e.AddQuietPod("a", 2), e.AddQuietPod("b", 3)
	evil := e.AddQuietPod("evil", 4)
	e.MustPing(t, "a", 3, 2)
	tab := d.Switch().FDB()
	evilID, _ := d.Switch().PortByName("evil")

	before := ports(d.Switch())
	learned0 := learned(d)
	fl := flood(writer(t, e, "evil", false), nil)
	time.Sleep(time.Second)
	sent := fl.Stop()
	refused := fl.errs.Load() // the TAP's drops come back to the writer as ENOBUFS
	// Let the switch read what is still queued in evil's TAP.
	var after map[string]vswitch.PortInfo
	testenv.Eventually(2*time.Second, func() bool {
		prev := after
		time.Sleep(50 * time.Millisecond)
		after = ports(d.Switch())
		return prev != nil && after["evil"].Counters.RxFrames == prev["evil"].Counters.RxFrames
	})
	delta := func(port string, f func(c vswitch.Counters) uint64) uint64 {
		return f(after[port].Counters) - f(before[port].Counters)
	}
	read := delta("evil", func(c vswitch.Counters) uint64 { return c.RxFrames })
	locked := delta("evil", func(c vswitch.Counters) uint64 { return c.Drops[vswitch.DropSrcLock] })
	dropped := linkStats(t, e, "evil").TxDropped
	t.Logf("flood of %d frames: %d refused at evil's TAP (its tx drops: %d), %d accepted; switch read %d, dropped %d as %s; a was sent %d frames, b %d",
		sent+refused, refused, dropped, sent, read, locked, vswitch.DropSrcLock, delta("a", txFrames), delta("b", txFrames))
	if refused < 10000 {
		t.Fatalf("only %d flood frames refused at the TAP: not a flood, or no kernel-side lock", refused)
	}
	// The pings' few frames aside, nothing of the flood reached the switch.
	if read > 20 || sent > 0 {
		t.Errorf("%d flood frames got past evil's TAP and %d were read by the switch: want none", sent, read)
	}
	if locked > read {
		t.Errorf("%d dropped as %s of %d read", locked, vswitch.DropSrcLock, read)
	}
	if n := learned(d); n > learned0+1 {
		t.Errorf("learned entries %d -> %d under a locked flood", learned0, n)
	}
	em := nodetest.MAC(t, evil)
	for _, x := range tab.Entries() {
		if x.Port == evilID && x.MAC.String() != em.HardwareAddr().String() {
			t.Errorf("flood source %v learned on evil's port", x.MAC)
		}
	}
	// A few frames of the a <-> b pings ran meanwhile; thousands would
	// mean the flood was flooded.
	for _, p := range []string{"a", "b"} {
		if n := delta(p, txFrames); n > 100 {
			t.Errorf("pod %s was sent %d frames during the flood", p, n)
		}
	}
	keepsEntries(t, d, a, b)
	e.MustPing(t, "a", 3, 3)
	e.MustPing(t, "evil", 2, 3) // from its own MAC, evil is a pod like any other

	// A restart re-attaches the locked TAPs (their kernel filter from the
	// run before must not get in the way) and locks them again.
	e.Stop(false)
	d = e.Start()
	for _, p := range []string{"a", "b", "evil"} {
		if got, err := e.Client.Pod(bg, p); err != nil || got.State != api.PodUp {
			t.Fatalf("after a restart with the lock, pod %s: %+v %v", p, got, err)
		}
	}
	e.MustPing(t, "evil", 2, 2)
	fl = flood(writer(t, e, "evil", false), nil)
	time.Sleep(200 * time.Millisecond)
	if sent := fl.Stop(); sent != 0 || fl.errs.Load() == 0 {
		t.Errorf("after a restart with the lock: %d flood frames accepted, %d refused; want none accepted", sent, fl.errs.Load())
	}

	// A daemon started without the lock takes the TAPs' filters off.
	e.Stop(false)
	e.Cfg.Switch.LockPodMAC = false
	d = e.Start()
	fl = flood(writer(t, e, "evil", false), nil)
	time.Sleep(200 * time.Millisecond)
	if sent := fl.Stop(); sent == 0 {
		t.Errorf("after a restart without lock_pod_mac the TAP still refuses foreign sources (%d refused)", fl.errs.Load())
	}
}

func txFrames(c vswitch.Counters) uint64 { return c.TxFrames }
