package hostile

import (
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/cmd/internal/nodetest"
	"github.com/tapswitch/tapswitch/internal/testenv"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

// TestARPSpoofing has pod "evil" send gratuitous ARP replies claiming pod
// b's IP with evil's own MAC, after pod a has resolved b by pinging it.
// With the guard on (the default), a's ARP cache keeps b's MAC, the switch
// counts every forged frame as an arp-guard drop and a still reaches b.
// With it off, the poisoning shows: a's entry for b's IP points at evil.
func TestARPSpoofing(t *testing.T) {
	for _, guard := range []bool{true, false} {
		name := map[bool]string{true: "GuardOn", false: "GuardOff"}[guard]
		t.Run(name, func(t *testing.T) {
			e := nodetest.New(t)
			e.Cfg.ARP.Guard = guard
			d := e.Start()
			a := e.AddQuietPod("a", 2)
			b := e.AddQuietPod("b", 3)
			evil := e.AddQuietPod("evil", 4)
			am, bm, em := nodetest.MAC(t, a), nodetest.MAC(t, b), nodetest.MAC(t, evil)
			e.MustPing(t, "a", 3, 2)
			if m, _, ok := neighbour(t, e, "a", e.IP(3)); !ok || m != bm {
				t.Fatalf("after a pinged b, a's neighbour entry for %s: %v %v, want %v", e.IP(3), m, ok, bm)
			}
			w := writer(t, e, "evil", false)
			// The classic forgeries: a gratuitous reply to everyone
			// (sender and target IP both b's) and an unsolicited reply
			// aimed at a, and a gratuitous request.
			forged := [][]byte{
				ether(bcast, em, 0x0806, arpBody(2, em, e.IP(3), bcast, e.IP(3))),
				ether(am, em, 0x0806, arpBody(2, em, e.IP(3), am, e.IP(2))),
				ether(bcast, em, 0x0806, arpBody(1, em, e.IP(3), [6]byte{}, e.IP(3))),
			}
			before := ports(d.Switch())["evil"].Counters
			sent := 0
			// Past the neighbour's locktime (1 s), so that a plain
			// unsolicited reply may override too.
			for round := 0; round < 4; round++ {
				for _, f := range forged {
					if err := w.Write(f); err != nil {
						t.Fatal(err)
					}
					sent++
				}
				time.Sleep(400 * time.Millisecond)
			}
			after := ports(d.Switch())["evil"].Counters
			guardDrops := after.Drops[vswitch.DropARPGuard] - before.Drops[vswitch.DropARPGuard]
			got, state, ok := neighbour(t, e, "a", e.IP(3))
			t.Logf("guard %v: %d forged ARP frames sent, %d arp-guard drops; a's entry for %s: %v (state %#x)",
				guard, sent, guardDrops, e.IP(3), got, state)
			if guard {
				if guardDrops != uint64(sent) {
					t.Errorf("arp-guard drops %d, want %d", guardDrops, sent)
				}
				if !ok || got != bm {
					t.Errorf("a's ARP cache changed under the guard: %s -> %v, want %v", e.IP(3), got, bm)
				}
				if n, ok := d.Switch().ARP().Lookup(vswitch.DefaultVLAN, e.IP(3), d.Switch().Now()); ok && n.MAC != bm {
					t.Errorf("the switch's snooped table took the forgery: %s -> %v", e.IP(3), n.MAC)
				}
				e.MustPing(t, "a", 3, 3)
				return
			}
			if guardDrops != 0 {
				t.Errorf("arp-guard drops %d with the guard off", guardDrops)
			}
			if !testenv.Eventually(2*time.Second, func() bool { m, _, _ := neighbour(t, e, "a", e.IP(3)); return m == em }) {
				m, _, _ := neighbour(t, e, "a", e.IP(3))
				t.Errorf("without the guard the forgery did not show: a's entry for %s is %v, want evil's %v", e.IP(3), m, em)
			}
		})
	}
}
