package hostile

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/cmd/internal/nodetest"
	"github.com/tapswitch/tapswitch/fdb"
	"github.com/tapswitch/tapswitch/internal/podnet"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

// TestBroadcastStorm: one pod sends broadcasts as fast as it can while two
// others ping. With storm control (switch.storm_pps) the switch lets at most
// that many of the stormer's floods through per second, counts the rest as
// `storm` drops, the bystander pod receives no more than the limit allows,
// and the others' unicast still flows. Without storm control, the bystander
// receives the storm.
func TestBroadcastStorm(t *testing.T) {
	const pps = 200
	for _, limited := range []bool{true, false} {
		name := "storm-control"
		if !limited {
			name = "no-limit"
		}
		t.Run(name, func(t *testing.T) {
			e := nodetest.New(t)
			if limited {
				e.Cfg.Switch.StormPPS = pps
			}
			d := e.Start()
			e.AddQuietPod("a", 2)
			e.AddQuietPod("b", 3)
			e.AddQuietPod("evil", 4)
			e.AddQuietPod("c", 5) // a bystander: it only listens
			e.MustPing(t, "a", 3, 2)

			w := writer(t, e, "evil", false)
			src := fdb.MAC{0x02, 0xee, 0, 0, 0, 4}
			bcast := fdb.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
			f := ether(bcast, src, 0x88b5, make([]byte, 46)) // local experimental EtherType
			ctx, cancel := context.WithCancel(context.Background())
			var sent atomic.Uint64
			done := make(chan struct{})
			go func() {
				defer close(done)
				for ctx.Err() == nil {
					if w.Write(f) == nil {
						sent.Add(1)
					}
				}
			}()
			before := ports(d.Switch())
			start := time.Now()
			r, err := podnet.Ping(bg, e.Netns("a"), e.IP(3), podnet.PingOptions{Count: 20, Interval: 50 * time.Millisecond, Timeout: time.Second})
			cancel()
			<-done
			took := time.Since(start)
			after := ports(d.Switch())
			if err != nil {
				t.Fatalf("ping during the storm: %v", err)
			}
			ev, cp := after["evil"].Counters, after["c"].Counters
			storm := ev.Drops[vswitch.DropStorm] - before["evil"].Counters.Drops[vswitch.DropStorm]
			toC := cp.TxFrames - before["c"].Counters.TxFrames
			flooded := ev.Flooded - before["evil"].Counters.Flooded
			t.Logf("%s: %d broadcasts sent in %v (%.0f/s); flooded %d, storm drops %d; bystander was sent %d; ping a -> b: %s",
				name, sent.Load(), took.Round(time.Millisecond), float64(sent.Load())/took.Seconds(), flooded, storm, toC, r)
			if sent.Load() < 10*pps {
				t.Fatalf("only %d broadcasts sent: not a storm", sent.Load())
			}
			if r.Received() < 19 {
				t.Errorf("unicast a -> b during the storm: %s", r)
			}
			windows := uint64(took/time.Second) + 2 // partial windows at both ends
			if limited {
				if flooded > windows*pps {
					t.Errorf("storm control let %d floods through in %v, limit %d/s", flooded, took, pps)
				}
				if storm == 0 || toC > windows*pps+uint64(r.Received()) {
					t.Errorf("storm drops %d, bystander sent %d: the limit did not hold", storm, toC)
				}
			} else if storm != 0 || toC < 10*pps {
				t.Errorf("without storm control: %d storm drops, bystander sent %d", storm, toC)
			}
		})
	}
}
