package simreal

import (
	"fmt"
	"time"

	"github.com/tapswitch/tapswitch/sim"
)

// Scale returns a copy of sc in which time runs f times as fast (0 < f <=
// 1): every time (steps, intervals, assertions' at and since, the run's
// duration and tick, FDB and ARP ageing, hosts' ARP timeouts) is
// multiplied by f, every rate (flows, MAC floods) divided by it. What
// happens is the same, in a shorter wall-clock time, as long as nothing
// in the scenario runs on a clock the scaling cannot reach; a per-second
// meter (a port's storm or rx_pps) is one, so a scenario with one is
// refused. --compare runs the simulator on the scaled scenario too.
func Scale(sc *sim.Scenario, f float64) (*sim.Scenario, error) {
	if !(f > 0 && f <= 1) {
		return nil, fmt.Errorf("--time-scale %g: want a factor above 0 and at most 1", f)
	}
	if f == 1 {
		return sc, nil
	}
	d := func(x time.Duration) time.Duration { return scaleDuration(x, f) }
	out := *sc
	out.Run.Duration = d(sc.Run.Duration)
	out.Run.Tick = max(d(sc.Run.Tick), time.Millisecond)
	out.Switches = append([]sim.SwitchSpec(nil), sc.Switches...)
	for i := range out.Switches {
		s := &out.Switches[i]
		s.Ageing, s.ARPAgeing = d(s.Ageing), d(s.ARPAgeing)
		for _, p := range s.Ports {
			if p.Storm > 0 || p.RxPPS > 0 {
				return nil, refuse(sc, p.Line, "--time-scale: switches.%s.ports.%s meters frames per second of wall-clock time (storm, rx_pps), which scaling would change", s.Name, p.Name)
			}
		}
	}
	out.Hosts = append([]sim.HostSpec(nil), sc.Hosts...)
	for i := range out.Hosts {
		out.Hosts[i].ARPTimeout = d(out.Hosts[i].ARPTimeout)
	}
	out.Timeline = append([]sim.Step(nil), sc.Timeline...)
	for i := range out.Timeline {
		st := &out.Timeline[i]
		st.At, st.Wait = d(st.At), d(st.Wait)
		if a := st.Action; a != nil {
			if k, ok := realActions[a.Kind()]; ok {
				st.Action = k.scale(a, f)
			}
		}
	}
	out.Assertions = append([]sim.Assertion(nil), sc.Assertions...)
	for i := range out.Assertions {
		a := &out.Assertions[i]
		a.At, a.Since = d(a.At), d(a.Since)
	}
	return &out, nil
}
