package hostile

import (
	"testing"

	"github.com/tapswitch/tapswitch/cmd/internal/nodetest"
	"github.com/tapswitch/tapswitch/fdb"
	"github.com/tapswitch/tapswitch/internal/podnet"
)

// BenchmarkUnicastUnderMACFlood measures what a MAC flood costs a pod's
// traffic: an established TCP transfer between pods a and b while pod
// "evil" floods random source MACs (64-byte frames, one writer, as fast as it goes) into
// a table limited to 1024 entries, against the same transfer undisturbed,
// in alternation within each iteration. Target under evict-fair: ratio >=
// 0.90. Metrics: Gbit/s of both, their ratio, and the flood's rate.
//
// In the macof cases every flood frame has an unknown destination and so
// is copied to every other port (a, b and the gateway). The self cases
// send the flood to the flooder's own MAC, which the switch drops
// (same-port) after learning the source: they isolate the cost of the
// table's churn and of reading the flood from that of flooding it. The
// flooder runs in the test process, which also hosts the daemon and both
// TCP ends, so all of them share the machine's CPUs. The
// storm-control case limits each pod's floods to 1000 frames/s
// (switch.storm_pps), the operator's answer to a flooding pod.
//
//	sudo go test -run '^$' -bench UnicastUnderMACFlood -benchtime 3x ./cmd/internal/hostile
func BenchmarkUnicastUnderMACFlood(b *testing.B) {
	for _, bc := range []struct {
		name, policy string
		self         bool
		storm        int // switch.storm_pps
	}{
		{"evict-fair/macof", "evict-fair", false, 0},
		{"stop-learning/macof", "stop-learning", false, 0},
		{"evict-fair/self", "evict-fair", true, 0},
		{"evict-fair/macof+storm-control", "evict-fair", false, 1000},
	} {
		policy := bc.policy
		b.Run(bc.name, func(b *testing.B) {
			e := nodetest.New(b)
			e.Cfg.FDB.Limit = 1024
			e.Cfg.FDB.Policy = policy
			e.Cfg.Switch.StormPPS = bc.storm
			e.Start()
			e.AddQuietPod("a", 2)
			e.AddQuietPod("b", 3)
			evil := e.AddQuietPod("evil", 4)
			e.MustPing(b, "a", 3, 2)
			var dst *fdb.MAC
			if bc.self {
				m := nodetest.MAC(b, evil)
				dst = &m
			}
			w := writer(b, e, "evil", false)
			const size = 512 << 20
			transfer := func() float64 {
				r, err := podnet.Transfer(bg, e.Netns("a"), e.Netns("b"), e.IP(3), size)
				if err != nil {
					b.Fatal(err)
				}
				return r.Rate()
			}
			transfer() // warm-up: connections, ARP, the table
			var base, under, frames, secs float64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				base += transfer()
				fl := flood(w, dst)
				r, err := podnet.Transfer(bg, e.Netns("a"), e.Netns("b"), e.IP(3), size)
				n := fl.Stop()
				if err != nil {
					b.Fatal(err)
				}
				under += r.Rate()
				frames += float64(n)
				secs += r.Duration.Seconds()
			}
			b.StopTimer()
			base, under = base/float64(b.N), under/float64(b.N)
			b.ReportMetric(base/1e9, "base-Gbit/s")
			b.ReportMetric(under/1e9, "flood-Gbit/s")
			b.ReportMetric(under/base, "ratio")
			b.ReportMetric(frames/secs/1e3, "flood-kframes/s")
		})
	}
}
