package bench

import (
	"testing"
	"time"
)

// TestPods32 runs the pods32 case, 992 concurrent streams, on the bridge
// and then on tapswitch, as the bench does, then udp64pdr4 on the same pods. It used to stall on two CPUs:
// the second system's ARP overflowed the kernel's shared neighbour table
// (its dials timed out), and closing the streams one by one took minutes.
func TestPods32(t *testing.T) {
	needTopologies(t, "runs 992 streams over 32 pods on each")
	ctx, _, br, ts := bothSystems(t, 32, 3*time.Minute)
	cs, err := SelectCases([]string{"pods32"})
	if err != nil {
		t.Fatal(err)
	}
	c := cs[0]
	// Run's preparation, as the bench does: permanent neighbour entries
	// for all 32 pods of each system, once, before the case.
	if err := prepare([]Topology{br, ts}, cs); err != nil {
		t.Fatal(err)
	}
	o := Options{Warm: 500 * time.Millisecond, Duration: time.Second}
	for _, topo := range []Topology{br, ts} {
		t0 := time.Now()
		ms, err := c.Run(ctx, topo, o)
		if err != nil {
			t.Fatalf("%s: %v", topo.System(), err)
		}
		el := time.Since(t0)
		t.Logf("%s: %.2f Gbit/s, case took %v", topo.System(), ms[0].Value, el.Round(time.Millisecond))
		if ms[0].Value <= 0 {
			t.Errorf("%s: no throughput", topo.System())
		}
		// 1.5 s of traffic; set-up and teardown took minutes when broken.
		if el > 30*time.Second {
			t.Errorf("%s: case took %v", topo.System(), el)
		}
	}
	// udp64pdr4 on the same pods (its 4 pairs are the first 8): a rate
	// delivered with under PDRLoss lost, on both systems.
	cs, err = SelectCases([]string{"udp64pdr4"})
	if err != nil {
		t.Fatal(err)
	}
	for _, topo := range []Topology{br, ts} {
		ms, err := cs[0].Run(ctx, topo, Options{Duration: time.Second})
		if err != nil {
			t.Fatalf("udp64pdr4, %s: %v", topo.System(), err)
		}
		t.Logf("udp64pdr4, %s: %+v", topo.System(), ms)
		if ms[0].Name != pdrMetric || !(ms[0].Value > 0) || ms[2].Name != "loss at that rate" || ms[2].Value >= PDRLoss {
			t.Errorf("udp64pdr4, %s: %+v", topo.System(), ms)
		}
	}
}
