package sim

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/fdb"
)

// clusterScenario is nodes nodes of pods pods each, as Kubernetes lays them
// out: every node a switch (cbr0) with its pods and its gateway address.
// Every pod ARPs for its gateway and pings it, the starts spread over
// spread.
func clusterScenario(nodes, pods int, spread time.Duration) *Scenario {
	sc := &Scenario{
		Name: fmt.Sprintf("cluster-%dx%d", nodes, pods), Seed: 1,
		Run: RunSpec{MaxEvents: 0, Tick: time.Second},
	}
	total := nodes * pods
	step := spread / time.Duration(max(total, 1))
	for n := range nodes {
		sw := fmt.Sprintf("cbr%d", n)
		sc.Switches = append(sc.Switches, SwitchSpec{
			Name: sw, Ageing: fdb.DefaultAgeing, TableLimit: fdb.DefaultLimit, ARPAgeing: fdb.DefaultAgeing, MTU: 1500,
		})
		gwIP := netip.AddrFrom4([4]byte{10, byte(n >> 8), byte(n), 1})
		gw := fmt.Sprintf("gw%d", n)
		sc.Hosts = append(sc.Hosts, HostSpec{
			Name: gw, Forward: true, ARPTimeout: DefaultARPTimeout,
			Interfaces: []IfaceSpec{{Name: "eth0", IP: netip.PrefixFrom(gwIP, 24)}},
		})
		sc.Links = append(sc.Links, LinkSpec{Name: gw, A: gw, B: sw, Latency: DefaultLatency, Bandwidth: DefaultBandwidth, Queue: DefaultQueue})
		for p := range pods {
			name := fmt.Sprintf("n%dp%d", n, p)
			ip := netip.AddrFrom4([4]byte{10, byte(n >> 8), byte(n), byte(p + 2)})
			sc.Hosts = append(sc.Hosts, HostSpec{
				Name: name, ARPTimeout: DefaultARPTimeout, Gateway: gwIP,
				Interfaces: []IfaceSpec{{Name: "eth0", IP: netip.PrefixFrom(ip, 24)}},
			})
			sc.Links = append(sc.Links, LinkSpec{Name: name, A: name, B: sw, Latency: DefaultLatency, Bandwidth: DefaultBandwidth, Queue: DefaultQueue})
			sc.Timeline = append(sc.Timeline, Step{
				At: time.Duration(n*pods+p) * step, HasAt: true,
				Action: &Ping{Name: name, From: name, To: gwIP.String(), Count: 1, Interval: time.Second, Size: 56, TTL: 64},
			})
		}
	}
	sc.Assertions = []Assertion{
		{Kind: "delivered", Ping: "*", Cmp: Cmp{Op: "==", Value: float64(total)}},
		{Kind: "lost", Ping: "*", Cmp: Cmp{Op: "==", Value: 0}},
	}
	return sc
}

type scaleRun struct {
	hosts      int
	wall       time.Duration
	build      time.Duration
	liveBytes  uint64 // heap held by the simulation after the run
	allocBytes uint64 // allocated during build and run
	res        *Result
}

func runScale(tb testing.TB, nodes, pods int) scaleRun {
	sc := clusterScenario(nodes, pods, time.Second)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	s, err := New(sc, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	built := time.Since(start)
	res, err := s.Run()
	wall := time.Since(start)
	if err != nil {
		tb.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(s)
	runtime.KeepAlive(sc)
	if !res.Passed {
		for _, a := range res.Assertions {
			tb.Log(a)
		}
		tb.Fatal("assertions failed")
	}
	hosts := len(sc.Hosts)
	return scaleRun{
		hosts: hosts, wall: wall, build: built, res: res,
		liveBytes:  after.HeapAlloc - before.HeapAlloc,
		allocBytes: after.TotalAlloc - before.TotalAlloc,
	}
}

// BenchmarkTenThousandHosts: 100 nodes x 100 pods (and 100 gateways); every
// pod ARPs for its gateway and pings it.
func BenchmarkTenThousandHosts(b *testing.B) {
	for b.Loop() {
		r := runScale(b, 100, 100)
		b.ReportMetric(r.wall.Seconds(), "wall-s")
		b.ReportMetric(r.build.Seconds(), "build-s")
		b.ReportMetric(float64(r.liveBytes)/float64(r.hosts), "live-B/host")
		b.ReportMetric(float64(r.allocBytes)/float64(r.hosts), "alloc-B/host")
		b.ReportMetric(float64(r.res.Deliveries), "deliveries")
	}
}

// TestTenThousandHosts holds the scale targets: under 10 s, at most 4 KiB
// per simulated host.
func TestTenThousandHosts(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("scale test: skipped with -short and -race")
	}
	r := runScale(t, 100, 100)
	per := float64(r.liveBytes) / float64(r.hosts)
	t.Logf("%d hosts: %v wall (build %v), %d deliveries, %.0f B/host live, %.0f B/host allocated",
		r.hosts, r.wall, r.build, r.res.Deliveries, per, float64(r.allocBytes)/float64(r.hosts))
	if r.wall > 10*time.Second {
		t.Errorf("took %v, want under 10s", r.wall)
	}
	if per > 4096 {
		t.Errorf("%.0f bytes per host, want at most 4096", per)
	}
}
