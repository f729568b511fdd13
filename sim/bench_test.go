package sim

import (
	"fmt"
	"strings"
	"testing"
)

// benchScenario: one switch, 2n pods, n UDP flows pod i -> pod n+i, each
// sending count datagrams at 1M/s after a warm-up ping.
func benchScenario(n, count int) string {
	var b strings.Builder
	b.WriteString("name: bench\nswitches: [{name: sw}]\nhosts:\n")
	for i := 1; i <= 2*n; i++ {
		fmt.Fprintf(&b, "  - {name: h%d, ip: 10.0.%d.%d/16}\n", i, i/250, i%250+1)
	}
	b.WriteString("links:\n")
	for i := 1; i <= 2*n; i++ {
		fmt.Fprintf(&b, "  - {a: h%d, b: sw}\n", i)
	}
	b.WriteString("timeline:\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "  - {at: 0s, ping: {name: w%d, from: h%d, to: h%d}}\n", i, i, n+i)
	}
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "  - {at: 1s, flow: {name: f%d, from: h%d, to: h%d, rate: 1000000, count: %d}}\n", i, i, n+i, count)
	}
	return b.String()
}

// BenchmarkSimFrames measures simulated frame deliveries per wall-clock
// second on one core: steady unicast UDP through one switch, each datagram
// two deliveries (pod to switch, switch to pod).
func BenchmarkSimFrames(b *testing.B) {
	const flows = 4
	count := max(b.N/(2*flows), 1)
	sc, err := Parse("bench.yaml", []byte(benchScenario(flows, count)))
	if err != nil {
		b.Fatal(err)
	}
	sc.Run.MaxEvents, sc.Run.MaxFrames = 0, 0 // b.N decides
	s, err := New(sc, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	res, err := s.Run()
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if res.Stopped != StopIdle || res.Flows[0].Received != count {
		b.Fatalf("stopped %s; flow delivered %d of %d", res.Stopped, res.Flows[0].Received, count)
	}
	b.ReportMetric(float64(res.Deliveries)/b.Elapsed().Seconds(), "deliveries/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(res.Deliveries), "ns/delivery")
}
