package simreal

import (
	"context"
	"sync"
	"time"

	"github.com/tapswitch/tapswitch/sim"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

// sampler fills the metrics JSON of a real run with the simulator's names:
// every run.tick the switch's counters (its scenario ports only, in link
// order as the simulator numbers them), and the bytes each end of each
// cable (host and TAP) put on it, read from the port's counters.
type sampler struct {
	r       *runner
	mu      sync.Mutex
	series  []sim.Sample
	links   []sim.LinkSample
	portsIn []string // scenario port names, in link order
}

func newSampler(r *runner) *sampler {
	s := &sampler{r: r}
	for _, l := range r.p.sc.Links {
		s.portsIn = append(s.portsIn, r.p.portOf[linkHost(r.p, l)])
	}
	return s
}

// linkHost is the host end of a host-to-switch link.
func linkHost(p *plan, l sim.LinkSpec) string {
	if _, ok := p.hosts[l.A]; ok {
		return l.A
	}
	return l.B
}

func (s *sampler) run(ctx context.Context, t0 time.Time, tick time.Duration) {
	for k := 0; ; k++ {
		if !sleepUntil(ctx, t0.Add(time.Duration(k)*tick)) {
			return
		}
		s.sample(time.Duration(k) * tick)
	}
}

func (s *sampler) sample(at time.Duration) {
	r := s.r
	s.mu.Lock()
	defer s.mu.Unlock()
	var last sim.Sample
	if k := len(s.series); k > 0 {
		if last = s.series[k-1]; last.T == at {
			return
		}
	}
	sw := r.n.d.Switch()
	fs, as := sw.FDB().Stats(), sw.ARP().Stats()
	t := r.totals()
	sm := sim.Sample{T: at, FDBEntries: r.learned(), ARPEntries: as.Neighbours, FDBLearned: fs.Learned, FDBEvicted: fs.Evicted, FDBRefused: fs.Refused,
		Rx: t.RxFrames, Tx: t.TxFrames, Flooded: t.Flooded, Unknown: t.Unknown, Dropped: t.Dropped()}
	if d := sm.Rx - last.Rx; d > 0 {
		sm.FloodRatio = float64(sm.Flooded-last.Flooded) / float64(d)
	}
	ports, _ := r.ports()
	ls := sim.LinkSample{T: at}
	for k, name := range s.portsIn {
		pi := ports[name]
		c := pi.Counters
		sm.PortRx = append(sm.PortRx, c.RxFrames)
		sm.PortTx = append(sm.PortTx, c.TxFrames)
		n := 0
		if pi.ID != 0 {
			n = sw.FDB().PortEntries(pi.ID)
		}
		sm.PortFDB = append(sm.PortFDB, n)
		for i, v := range c.Drops {
			if v == 0 {
				continue
			}
			if sm.PortDrops == nil {
				sm.PortDrops = map[string][]uint64{}
			}
			reason := vswitch.DropReason(i).String()
			if sm.PortDrops[reason] == nil {
				sm.PortDrops[reason] = make([]uint64, len(s.portsIn))
			}
			sm.PortDrops[reason][k] = v
		}
		l := r.p.sc.Links[k]
		b := [2]uint64{c.RxBytes, c.TxBytes} // host to switch, switch to host
		if _, ok := r.p.hosts[l.A]; !ok {
			b[0], b[1] = b[1], b[0]
		}
		ls.Bytes = append(ls.Bytes, b)
	}
	s.series = append(s.series, sm)
	s.links = append(s.links, ls)
}

// metrics is the run's metrics JSON, once it has ended.
func (s *sampler) metrics(res *sim.Result) *sim.Metrics {
	r := s.r
	s.sample(res.End)
	s.mu.Lock()
	defer s.mu.Unlock()
	sw := res.Switches[0]
	m := &sim.Metrics{Scenario: res.Scenario, Seed: res.Seed, Tick: r.p.sc.Run.Tick, End: res.End, Stopped: res.Stopped,
		Links: res.Links, LinkSeries: s.links,
		Switches: []sim.SwitchMetrics{{Name: sw.Name, Series: s.series, PortNames: s.portsIn, FDB: sw.FDB, ARP: sw.ARP, Ports: sw.Ports}}}
	for range r.p.sc.Links {
		m.LinkBandwidth = append(m.LinkBandwidth, sim.DefaultBandwidth)
	}
	return m
}
