package vswitch_test

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/tapswitch/tapswitch/fdb"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

func srcLockDrops(r *rig, i int) uint64 {
	return r.sw.Ports()[i].Counters.Drops[vswitch.DropSrcLock]
}

// TestLockMAC pins port security: a locked port forwards only frames from
// its own MAC; any other source is dropped before learning, ARP and
// forwarding, and counted as src-lock.
func TestLockMAC(t *testing.T) {
	// Port 0 is locked to mac(1); ports 1 and 2 are not locked.
	r := newRig(t, 3, nil, func(i int, c *vswitch.PortConfig) {
		if i == 0 {
			c.LockMAC = mac(1)
			c.IPs = []netip.Addr{ip4(1)}
		}
	})
	// mac(2) lives behind port 1.
	if out := r.send(1, ether(bcast, mac(2), 0x0800, 50)); !eq(out, 0, 2) {
		t.Fatalf("unlocked port's broadcast left on %v", out)
	}
	entries := r.sw.FDB().Len()
	stats := r.sw.FDB().Stats()
	arpStats := r.sw.ARP().Stats()

	spoofs := []struct {
		name  string
		frame []byte
	}{
		{"broadcast from a new MAC", ether(bcast, mac(9), 0x0800, 50)},
		{"unicast to a known MAC", ether(mac(2), mac(9), 0x0800, 50)},
		{"unicast to an unknown MAC", ether(mac(8), mac(9), 0x0800, 50)},
		{"another port's MAC", ether(bcast, mac(2), 0x0800, 50)},
		{"ARP from a spoofed MAC", arpFrame(t, bcast, 1, mac(9), ip4(1), fdb.MAC{}, ip4(2))},
		{"gratuitous ARP for another MAC", arpFrame(t, bcast, 2, mac(2), ip4(1), bcast, ip4(1))},
		{"multicast source", ether(bcast, fdb.MAC{0x01, 0, 0x5e, 0, 0, 1}, 0x0800, 50)},
		{"zero source", ether(bcast, fdb.MAC{}, 0x0800, 50)},
		{"tagged with a VLAN the port lacks", tagged(ether(bcast, mac(9), 0x0800, 50), 20)},
	}
	for _, c := range spoofs {
		t.Run(c.name, func(t *testing.T) {
			before := r.sw.Ports()[0].Counters
			if out := r.send(0, c.frame); len(out) != 0 {
				t.Fatalf("forwarded to %v", out)
			}
			after := r.sw.Ports()[0].Counters
			if n := after.Drops[vswitch.DropSrcLock] - before.Drops[vswitch.DropSrcLock]; n != 1 {
				t.Fatalf("src-lock counted %d times", n)
			}
			if n := after.Dropped() - before.Dropped(); n != 1 {
				t.Fatalf("%d drops counted in all, want 1 (src-lock only)", n)
			}
			if after.RxFrames != before.RxFrames+1 {
				t.Fatalf("rx frames %d -> %d: a dropped frame is still received", before.RxFrames, after.RxFrames)
			}
		})
	}
	if got := r.sw.FDB().Len(); got != entries {
		t.Fatalf("FDB went from %d to %d entries", entries, got)
	}
	if got := r.sw.FDB().Stats(); got.Learned != stats.Learned || got.Moved != stats.Moved || got.Refused != stats.Refused {
		t.Fatalf("FDB learned/moved/refused %d/%d/%d -> %d/%d/%d",
			stats.Learned, stats.Moved, stats.Refused, got.Learned, got.Moved, got.Refused)
	}
	if p, ok := r.sw.FDB().Lookup(1, mb(2), r.clock.Now()); !ok || p != r.ids[1] {
		t.Fatalf("mac 2 moved to %v (%v) by a spoofed frame", p, ok)
	}
	if got := r.sw.ARP().Stats(); got != arpStats {
		t.Fatalf("ARP handler saw spoofed frames: %+v -> %+v", arpStats, got)
	}
	if n := srcLockDrops(r, 1) + srcLockDrops(r, 2); n != 0 {
		t.Fatalf("unlocked ports counted %d src-lock drops", n)
	}

	// The port's own MAC passes: learned, flooded, then unicast both ways.
	if out := r.send(0, ether(bcast, mac(1), 0x0800, 50)); !eq(out, 1, 2) {
		t.Fatalf("own-MAC broadcast left on %v", out)
	}
	if p, ok := r.sw.FDB().Lookup(1, mb(1), r.clock.Now()); !ok || p != r.ids[0] {
		t.Fatal("the locked MAC was not learned")
	}
	if out := r.send(0, ether(mac(2), mac(1), 0x0800, 50)); !eq(out, 1) {
		t.Fatalf("own-MAC unicast left on %v", out)
	}
	if out := r.send(1, ether(mac(1), mac(2), 0x0800, 50)); !eq(out, 0) {
		t.Fatalf("unicast to the locked port left on %v", out)
	}
	// ARP from the port's own MAC and address is handled as usual.
	if out := r.send(0, arpFrame(t, bcast, 1, mac(1), ip4(1), fdb.MAC{}, ip4(2))); !eq(out, 1, 2) {
		t.Fatalf("own ARP request left on %v", out)
	}
	// Unlocked ports send from any MAC.
	if out := r.send(2, ether(bcast, mac(9), 0x0800, 50)); !eq(out, 0, 1) {
		t.Fatalf("unlocked port's new MAC left on %v", out)
	}
	if d := srcLockDrops(r, 0); d != uint64(len(spoofs)) {
		t.Fatalf("src-lock drops %d, want %d", d, len(spoofs))
	}
}

// TestLockMACBatch mixes spoofed and genuine frames in one batch: the lock
// judges each frame, and the per-batch memo of the last source learned
// does not let a spoofed frame through after a genuine one.
func TestLockMACBatch(t *testing.T) {
	r := newRig(t, 2, nil, func(i int, c *vswitch.PortConfig) {
		if i == 0 {
			c.LockMAC = mac(1)
		}
	})
	r.send(1, ether(bcast, mac(2), 0x0800, 50))
	good := ether(mac(2), mac(1), 0x0800, 50)
	bad := ether(mac(2), mac(3), 0x0800, 50)
	r.in[0].Receive([][]byte{good, bad, good, bad, bad, good})
	if got := r.ports[1].Take(); len(got) != 3 {
		t.Fatalf("port 1 got %d frames, want 3", len(got))
	}
	if d := srcLockDrops(r, 0); d != 3 {
		t.Fatalf("src-lock drops %d, want 3", d)
	}
	if _, ok := r.sw.FDB().Lookup(1, mb(3), r.clock.Now()); ok {
		t.Fatal("spoofed mac 3 learned")
	}
}

// TestLockMACVLANs checks the lock on tagged frames: it judges the source
// whatever the tag, on access and trunk ports, before the VLAN checks.
func TestLockMACVLANs(t *testing.T) {
	// Port 0: access VLAN 10, locked to mac(1). Port 1: access VLAN 10.
	// Port 2: trunk 10,20 without a native VLAN, locked to mac(3).
	// Port 3: trunk 10,20, native 20, not locked.
	r := newRig(t, 4, nil, func(i int, c *vswitch.PortConfig) {
		switch i {
		case 0:
			c.PVID, c.LockMAC = 10, mac(1)
		case 1:
			c.PVID = 10
		case 2:
			c.Trunk, c.Allowed, c.LockMAC = true, []uint16{10, 20}, mac(3)
		case 3:
			c.Trunk, c.Allowed, c.PVID = true, []uint16{10, 20}, 20
		}
	})
	cases := []struct {
		name  string
		port  int
		frame []byte
		out   []int
		drop  vswitch.DropReason
	}{
		{"access: own MAC untagged", 0, ether(bcast, mac(1), 0x0800, 50), []int{1, 2, 3}, 0},
		{"access: own MAC priority-tagged", 0, tagged(ether(bcast, mac(1), 0x0800, 50), 0), []int{1, 2, 3}, 0},
		{"access: own MAC tagged with the PVID", 0, tagged(ether(bcast, mac(1), 0x0800, 50), 10), []int{1, 2, 3}, 0},
		{"access: spoofed untagged", 0, ether(bcast, mac(9), 0x0800, 50), nil, vswitch.DropSrcLock},
		{"access: spoofed priority-tagged", 0, tagged(ether(bcast, mac(9), 0x0800, 50), 0), nil, vswitch.DropSrcLock},
		{"access: spoofed with a foreign VLAN", 0, tagged(ether(bcast, mac(9), 0x0800, 50), 20), nil, vswitch.DropSrcLock},
		{"access: own MAC with a foreign VLAN", 0, tagged(ether(bcast, mac(1), 0x0800, 50), 20), nil, vswitch.DropBadVLAN},
		{"trunk: own MAC in VLAN 10", 2, tagged(ether(bcast, mac(3), 0x0800, 50), 10), []int{0, 1, 3}, 0},
		{"trunk: own MAC in VLAN 20", 2, tagged(ether(bcast, mac(3), 0x0800, 50), 20), []int{3}, 0},
		{"trunk: spoofed in VLAN 10", 2, tagged(ether(bcast, mac(9), 0x0800, 50), 10), nil, vswitch.DropSrcLock},
		{"trunk: spoofed in VLAN 20", 2, tagged(ether(bcast, mac(9), 0x0800, 50), 20), nil, vswitch.DropSrcLock},
		{"trunk: spoofed untagged", 2, ether(bcast, mac(9), 0x0800, 50), nil, vswitch.DropSrcLock},
		{"trunk: own MAC untagged, no native VLAN", 2, ether(bcast, mac(3), 0x0800, 50), nil, vswitch.DropBadVLAN},
		{"unlocked trunk: any MAC in VLAN 10", 3, tagged(ether(bcast, mac(9), 0x0800, 50), 10), []int{0, 1, 2}, 0},
		{"unlocked trunk: any MAC untagged", 3, ether(bcast, mac(8), 0x0800, 50), []int{2}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := r.sw.Ports()[c.port].Counters
			out := r.send(c.port, c.frame)
			if !eq(out, c.out...) {
				t.Fatalf("left on %v, want %v", out, c.out)
			}
			after := r.sw.Ports()[c.port].Counters
			want := uint64(0)
			if c.out == nil {
				want = 1
			}
			if n := after.Dropped() - before.Dropped(); n != want {
				t.Fatalf("%d drops, want %d", n, want)
			}
			if want == 1 && after.Drops[c.drop] != before.Drops[c.drop]+1 {
				t.Fatalf("not counted as %v: %v", c.drop, after.DropMap)
			}
		})
	}
	// The own MACs were learned in their VLANs; the spoofed one nowhere.
	now := r.clock.Now()
	if p, ok := r.sw.FDB().Lookup(10, mb(1), now); !ok || p != r.ids[0] {
		t.Fatal("mac 1 not learned on port 0 in VLAN 10")
	}
	for _, vid := range []uint16{10, 20} {
		if p, ok := r.sw.FDB().Lookup(vid, mb(3), now); !ok || p != r.ids[2] {
			t.Fatalf("mac 3 not learned on the trunk in VLAN %d", vid)
		}
	}
	if p, ok := r.sw.FDB().Lookup(10, mb(9), now); !ok || p != r.ids[3] {
		t.Fatalf("mac 9 in VLAN 10 on %v (%v), want the unlocked trunk", p, ok)
	}
	if _, ok := r.sw.FDB().Lookup(20, mb(9), now); ok {
		t.Fatal("spoofed mac 9 learned in VLAN 20")
	}
	// The tagged unicast path, retagging included, to and from the lock.
	if out := r.send(3, tagged(ether(mac(1), mac(9), 0x0800, 50), 10)); !eq(out, 0) {
		t.Fatalf("unicast to the locked access port left on %v", out)
	}
	if out := r.send(0, ether(mac(9), mac(1), 0x0800, 50)); !eq(out, 3) {
		t.Fatalf("unicast from the locked access port left on %v", out)
	}
}

func TestLockMACConfig(t *testing.T) {
	if vswitch.DropSrcLock.String() != "src-lock" {
		t.Fatalf("DropSrcLock is %q", vswitch.DropSrcLock)
	}
	if !slices.Contains(vswitch.DropReasons(), vswitch.DropSrcLock) {
		t.Fatal("DropReasons lacks src-lock")
	}
	r := newRig(t, 2, nil, func(i int, c *vswitch.PortConfig) {
		if i == 0 {
			c.LockMAC = mac(1)
		}
	})
	for _, bad := range []fdb.MAC{bcast, {0x01, 0, 0x5e, 0, 0, 1}, {0x33, 0x33, 0, 0, 0, 1}} {
		if _, err := r.sw.AddPort(&nopPort{}, vswitch.PortConfig{Name: "x", LockMAC: bad}); err == nil || !strings.Contains(err.Error(), "lock mac") {
			t.Fatalf("lock mac %v: error %v", bad, err)
		}
	}
	pi := r.sw.Ports()
	if pi[0].LockMAC != mac(1) || pi[1].LockMAC != (fdb.MAC{}) {
		t.Fatalf("port info lock macs %v, %v", pi[0].LockMAC, pi[1].LockMAC)
	}
	r.send(0, ether(bcast, mac(2), 0x0800, 50))
	b, err := json.Marshal(r.sw.Ports())
	if err != nil {
		t.Fatal(err)
	}
	js := string(b)
	if !strings.Contains(js, `"lock_mac":"02:00:00:00:00:01"`) || strings.Count(js, `"lock_mac"`) != 1 {
		t.Fatalf("JSON lock_mac wrong: %s", js)
	}
	if !strings.Contains(js, `"drops":{"src-lock":1}`) {
		t.Fatalf("JSON lacks the src-lock drop: %s", js)
	}
	// Dropping a spoofed frame allocates nothing.
	f := [][]byte{ether(bcast, mac(9), 0x0800, 50)}
	if a := testing.AllocsPerRun(100, func() { r.in[0].Receive(f) }); a != 0 {
		t.Fatalf("%v allocs per spoofed frame", a)
	}
}

type nopPort struct{}

func (nopPort) WriteBatch(f [][]byte) (int, error) { return len(f), nil }
