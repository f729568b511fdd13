package bench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Metric is one number a case produced for one system in one round.
type Metric struct {
	Name         string
	Unit         string
	HigherBetter bool
	Value        float64
	// SenderBound marks a rate set by the traffic engine's sender rather
	// than the system: the system's own limit is at least Value
	// (UDP.SenderBound).
	SenderBound bool
}

// Case is one measurement, run against each system in turn.
type Case struct {
	Name  string
	Title string
	Pods  int // pods it needs
	Run   func(ctx context.Context, t Topology, o Options) ([]Metric, error)
}

// Options shape a bench run.
type Options struct {
	Cases    []string      // names; empty: QuickCases
	Duration time.Duration // measured time per case and round
	Warm     time.Duration // unmeasured start of each TCP case
	Rounds   int           // A B A B ...: each system this many times per case
	Progress io.Writer     // a line per measurement; nil: quiet
	// Iperf3 runs tcp1, tcp4, udp64 and udp64pdr with iperf3 instead of
	// the Go engine, to cross-check it (see iperf3.go).
	Iperf3 bool
	// UDPBatch is the datagrams per sendmmsg(2) call of udp64pdr's
	// sender (0: DefaultUDPBatch); UDPSenders its sockets per flow (0:
	// one). udp64 always writes one datagram per call.
	UDPBatch, UDPSenders int
}

// DefaultUDPBatch is udp64pdr's batch when Options leave it 0.
const DefaultUDPBatch = 32

// AllCases are the cases in the order they run.
var AllCases = []Case{
	{"tcp1", "TCP, 1 stream", 2, runTCP(1, 0)},
	{"tcp4", "TCP, 4 streams", 2, runTCP(4, 0)},
	{"udp64", "UDP flood, 64-byte payload", 2, runUDP},
	{"udp64pdr", "UDP 64-byte payload, highest rate with " + pdrLossText, 2, runUDPPDR(1)},
	{"udp64pdr4", "UDP 64-byte payload, 4 pod pairs, highest rate with " + pdrLossText, 8, runUDPPDR(4)},
	{"rr", "TCP_RR, 1-byte request/response", 2, runRR},
	{"ping", "ping RTT", 2, runPing},
	{"pods2", "2 pods, all pairs TCP", 2, runTCP(1, 2)},
	{"pods8", "8 pods, all pairs TCP", 8, runTCP(1, 8)},
	{"pods32", "32 pods, all pairs TCP", 32, runTCP(1, 32)},
}

// QuickCases run with --quick, and when Options.Cases is empty.
var QuickCases = []string{"tcp1", "tcp4", "udp64", "udp64pdr", "rr", "ping", "pods8"}

// FullCases is every case, the default without --quick.
func FullCases() []string {
	var s []string
	for _, c := range AllCases {
		s = append(s, c.Name)
	}
	return s
}

// SelectCases resolves names.
func SelectCases(names []string) ([]Case, error) {
	var out []Case
	for _, n := range names {
		i := slices.IndexFunc(AllCases, func(c Case) bool { return c.Name == n })
		if i < 0 {
			return nil, fmt.Errorf("case %q: unknown (have %s)", n, strings.Join(FullCases(), ", "))
		}
		out = append(out, AllCases[i])
	}
	return out, nil
}

// PodsNeeded is the most pods any of cases needs.
func PodsNeeded(cases []Case) int {
	n := 2
	for _, c := range cases {
		n = max(n, c.Pods)
	}
	return n
}

// runTCP measures streams parallel streams pod0 -> pod1, or with pods > 0
// one stream per ordered pair of the first pods (whose permanent
// neighbour entries, when they are more than 2, Run installed: prepare).
func runTCP(streams, pods int) func(context.Context, Topology, Options) ([]Metric, error) {
	return func(ctx context.Context, t Topology, o Options) ([]Metric, error) {
		ps := t.Pods()
		m := cpuMeter{pid: t.SwitchPID()}
		var tp Throughput
		var err error
		if o.Iperf3 && pods == 0 {
			tp, err = Iperf3TCP(ctx, Flow{ps[0], ps[1]}, streams, o.Warm, o.Duration, m.mark)
		} else {
			var flows []Flow
			if pods > 0 {
				flows = AllPairs(ps[:pods])
			} else {
				for range streams {
					flows = append(flows, Flow{ps[0], ps[1]})
				}
			}
			tp, err = TCPThroughput(ctx, flows, o.Warm, o.Duration, m.mark)
		}
		if err != nil {
			return nil, err
		}
		gbits := tp.Gbps() * tp.Elapsed.Seconds()
		out := []Metric{{"throughput", "Gbit/s", true, tp.Gbps(), false}}
		if gbits > 0 && m.procOK {
			out = append(out, Metric{"switch CPU", "CPU-s/Gbit", false, (m.proc1 - m.proc0) / gbits, false})
		}
		if gbits > 0 && m.machOK {
			out = append(out, Metric{"machine CPU", "CPU-s/Gbit", false, (m.mach1 - m.mach0) / gbits, false})
		}
		return out, nil
	}
}

func runUDP(ctx context.Context, t Topology, o Options) ([]Metric, error) {
	ps := t.Pods()
	flood := UDPFlood
	if o.Iperf3 {
		flood = Iperf3UDP
	}
	u, err := flood(ctx, Flow{ps[0], ps[1]}, 64, o.Duration)
	if err != nil {
		return nil, err
	}
	return []Metric{
		{"delivered", "kpps", true, u.DeliveredPPS() / 1e3, false},
		{"sent", "kpps", true, u.SentPPS() / 1e3, false},
		{"loss", "%", false, u.LossPct(), false},
	}, nil
}

// PDRLoss is the loss udp64pdr tolerates, in percent: the partial drop
// rate of RFC 2544-style testing, at the 1% loss commonly used for it.
const PDRLoss = 1.0

// pdrLossText is PDRLoss in the case's title and metric: "< 1% loss".
var pdrLossText = fmt.Sprintf("< %g%% loss", PDRLoss)

// pdrMetric is udp64pdr's rate metric: "delivered at < 1% loss".
var pdrMetric = "delivered at " + pdrLossText

// pdrTrials is how many paced trials the udp64pdr search runs after its
// unpaced probe: each halves the bracket, ending within 1/32 of the
// probe's send rate.
const pdrTrials = 6

// runUDPPDR finds the highest rate a paced sender can offer over pairs
// pod pairs (pod 2i -> pod 2i+1) with under PDRLoss percent of it lost, and
// reports what was delivered at it (pdrSearch, on an unpaced probe and
// paced trials, each a quarter of the case's duration and at least 0.25 s),
// whether the sender set that rate (SenderBound), and the CPU time per
// million datagrams delivered at it.
func runUDPPDR(pairs int) func(context.Context, Topology, Options) ([]Metric, error) {
	return func(ctx context.Context, t Topology, o Options) ([]Metric, error) {
		ps := t.Pods()
		var flows []Flow
		for i := range pairs {
			flows = append(flows, Flow{ps[2*i], ps[2*i+1]})
		}
		dur := max(o.Duration/4, 250*time.Millisecond)
		send := func(pps float64) (UDP, error) {
			m := &cpuMeter{pid: t.SwitchPID()}
			load := UDPLoad{Size: 64, PPS: pps, Batch: o.UDPBatch, Senders: o.UDPSenders}
			if load.Batch == 0 {
				load.Batch = DefaultUDPBatch
			}
			u, err := UDPSend(ctx, flows, load, dur, m.mark)
			u.cpu = m
			return u, err
		}
		// iperf3 cross-checks the one-flow case; the multi-flow one has no
		// iperf3 equivalent here and keeps the Go engine, as the other
		// such cases do.
		if o.Iperf3 && pairs == 1 {
			send = func(pps float64) (UDP, error) {
				m := &cpuMeter{pid: t.SwitchPID()}
				u, err := Iperf3UDPPaced(ctx, flows[0], 64, pps, dur, m.mark)
				u.cpu = m
				return u, err
			}
		}
		traced := func(pps float64) (UDP, error) {
			u, err := send(pps)
			if err == nil && o.Progress != nil {
				offered := "unpaced"
				if pps > 0 {
					offered = fmt.Sprintf("%.1f kpps", pps/1e3)
				}
				busy := ""
				if b, ok := u.Busy(); ok {
					busy = fmt.Sprintf(", machine %.0f%% busy", 100*b)
				}
				fmt.Fprintf(o.Progress, "  %s offered %s: sent %.1f kpps, delivered %.1f kpps, %.2f%% lost%s\n",
					t.System(), offered, u.SentPPS()/1e3, u.DeliveredPPS()/1e3, u.LossPct(), busy)
			}
			return u, err
		}
		probe, err := traced(0)
		if err != nil {
			return nil, err
		}
		best, err := pdrSearch(probe, traced)
		if err != nil {
			return nil, fmt.Errorf("%d flows from %s: %w", len(flows), flows[0].From.IP, err)
		}
		out := []Metric{
			{Name: pdrMetric, Unit: "kpps", HigherBetter: true, Value: best.DeliveredPPS() / 1e3, SenderBound: best.SenderBound()},
			// The rate the sender managed: a ratio of two is one of
			// senders, unless the system set it.
			{Name: "sent at that rate", Unit: "kpps", HigherBetter: true, Value: best.SentPPS() / 1e3, SenderBound: best.SenderBound()},
			{Name: "loss at that rate", Unit: "%", Value: best.LossPct()},
		}
		return append(out, best.cpuMetrics()...), nil
	}
}

// pdrSearch is udp64pdr's search, given the unpaced probe's outcome and a
// paced trial at a rate (datagrams/s): it returns the trial, or the probe,
// that delivered the most with under PDRLoss percent lost. A system that
// loses under PDRLoss even unpaced needs no search. Otherwise it bisects
// the offered rate between 0 and the probe's send rate in pdrTrials
// trials, starting at the probe's delivered rate (the likeliest answer;
// at most 3/4 of the bracket).
func pdrSearch(probe UDP, trial func(pps float64) (UDP, error)) (UDP, error) {
	if probe.Sent == 0 || probe.Received == 0 {
		return UDP{}, fmt.Errorf("the unpaced probe sent %d datagrams and %d arrived", probe.Sent, probe.Received)
	}
	if probe.LossPct() < PDRLoss {
		return probe, nil
	}
	var best, last UDP
	lo, hi := 0.0, probe.SentPPS()
	rate := min(probe.DeliveredPPS(), hi/2+hi/4)
	for range pdrTrials {
		u, err := trial(rate)
		if err != nil {
			return UDP{}, err
		}
		u.Offered = rate
		if u.Sent == 0 {
			return UDP{}, fmt.Errorf("the sender wrote nothing at %.0f datagrams/s", rate)
		}
		last = u
		// A sender held below the offered rate (its CPU share) still
		// passes: the system lost under PDRLoss of what it was given,
		// and the result is what it delivered, marked SenderBound.
		if u.LossPct() < PDRLoss {
			lo = rate
			if best.Sent == 0 || u.DeliveredPPS() > best.DeliveredPPS() {
				best = u
			}
		} else {
			hi = rate
		}
		rate = (lo + hi) / 2
	}
	if best.Sent == 0 {
		return UDP{}, fmt.Errorf("lost %.0f%% or more at every rate tried, down to %.0f datagrams/s (%.1f%% lost there)",
			PDRLoss, last.SentPPS(), last.LossPct())
	}
	return best, nil
}

func runRR(ctx context.Context, t Topology, o Options) ([]Metric, error) {
	ps := t.Pods()
	r, err := TCPRR(ctx, Flow{ps[0], ps[1]}, o.Warm/4, o.Duration)
	if err != nil {
		return nil, err
	}
	return []Metric{
		{"transactions", "trans/s", true, r.TPS(), false},
		{"latency p50", "us", false, float64(r.P50) / 1e3, false},
		{"latency p99", "us", false, float64(r.P99) / 1e3, false},
	}, nil
}

func runPing(ctx context.Context, t Topology, o Options) ([]Metric, error) {
	ps := t.Pods()
	const interval = 10 * time.Millisecond
	n := max(10, int(o.Duration/interval)/2)
	p, err := PingRTT(ctx, Flow{ps[0], ps[1]}, n, interval)
	if err != nil {
		return nil, err
	}
	return []Metric{
		{"rtt median", "ms", false, float64(p.Median()) / 1e6, false},
		{"loss", "%", false, 100 * (1 - float64(len(p.RTTs))/float64(p.Sent)), false},
	}, nil
}

// Stat summarises one system's samples of a metric.
type Stat struct {
	Median  float64   `json:"median"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	Samples []float64 `json:"samples"`
	// SenderBound is how many of the samples were the sender's limit,
	// not the system's (Metric.SenderBound): the system's is higher.
	SenderBound int `json:"sender_bound_rounds,omitempty"`
}

func summarise(xs []float64) *Stat {
	s := slices.Sorted(slices.Values(xs))
	return &Stat{Median: medianSorted(s), Min: s[0], Max: s[len(s)-1], Samples: xs}
}

// Median is the middle of xs, or the mean of the middle two; xs must not
// be empty, and is left as it was.
func Median(xs []float64) float64 { return medianSorted(slices.Sorted(slices.Values(xs))) }

func medianSorted(s []float64) float64 {
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Result is one metric of one case across the systems.
type Result struct {
	Case         string           `json:"case"`
	Title        string           `json:"title"`
	Metric       string           `json:"metric"`
	Unit         string           `json:"unit"`
	HigherBetter bool             `json:"higher_better"`
	Systems      map[string]*Stat `json:"systems"`
	// Ratio is the tapswitch median over the bridge median (0 when either
	// is missing or the bridge's is 0).
	Ratio float64 `json:"ratio"`
	// OVSRatio is the tapswitch median over the Open vSwitch median, when
	// --with-ovs measured it (0 otherwise, as Ratio).
	OVSRatio float64 `json:"ratio_ovs,omitempty"`
	// A ratio against a sender-bound sample (Stat.SenderBound) would
	// compare senders: it is 0 when the other system's rate was its
	// sender's in any round. When only tapswitch's was, its true ratio
	// is higher and RatioAtLeast (RatioOVSAtLeast) is set.
	RatioAtLeast    bool `json:"ratio_at_least,omitempty"`
	RatioOVSAtLeast bool `json:"ratio_ovs_at_least,omitempty"`
}

// Report is a whole bench run.
type Report struct {
	Machine  Machine   `json:"machine"`
	Command  string    `json:"command,omitempty"`
	Started  time.Time `json:"started"`
	Duration string    `json:"duration_per_case"`
	Rounds   int       `json:"rounds"`
	Systems  []string  `json:"systems"`
	Results  []Result  `json:"results"`
	Notes    []string  `json:"notes,omitempty"`
}

// Run measures every case on every topology, alternating the systems
// (A B A B ...) round by round within each case, and summarises.
func Run(ctx context.Context, topos []Topology, o Options) (*Report, error) {
	if len(o.Cases) == 0 {
		o.Cases = QuickCases
	}
	cases, err := SelectCases(o.Cases)
	if err != nil {
		return nil, err
	}
	if o.Rounds < 1 {
		o.Rounds = 1
	}
	rep := &Report{
		Machine: ReadMachine(), Started: time.Now().UTC(),
		Duration: o.Duration.String(), Rounds: o.Rounds,
	}
	for _, t := range topos {
		rep.Systems = append(rep.Systems, t.System())
	}
	if o.Iperf3 {
		v, err := Iperf3Version()
		if err != nil {
			return nil, err
		}
		rep.Notes = append(rep.Notes, "tcp1, tcp4, udp64 and udp64pdr ran "+v+" (nsenter into the pods; whole seconds), the other cases the Go engine")
	}
	if err := prepare(topos, cases); err != nil {
		return nil, err
	}
	progress := func(format string, a ...any) {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, format+"\n", a...)
		}
	}
	for _, c := range cases {
		for _, t := range topos {
			if len(t.Pods()) < c.Pods {
				return nil, fmt.Errorf("case %s: needs %d pods, %s has %d", c.Name, c.Pods, t.System(), len(t.Pods()))
			}
		}
		type key struct{ metric, system string }
		samples := map[key][]float64{}
		bound := map[key]int{}
		var order []Metric
		for r := 1; r <= o.Rounds; r++ {
			for _, t := range topos {
				pid := 0
				if d, ok := t.(DaemonProcess); ok {
					pid = d.DaemonPID()
				}
				if pid > 0 {
					// On failure the peak is the daemon's lifetime one,
					// which still bounds the round's.
					resetPeakRSS(pid)
				}
				ms, err := c.Run(ctx, t, o)
				if err != nil {
					return rep, fmt.Errorf("case %s, round %d, %s: %w", c.Name, r, t.System(), err)
				}
				if pid > 0 {
					m, err := ReadRSS(pid)
					if err != nil {
						return rep, fmt.Errorf("case %s, round %d, %s: daemon memory: %w", c.Name, r, t.System(), err)
					}
					ms = append(ms, rssMetrics(m)...)
				}
				var parts []string
				for _, m := range ms {
					k := key{m.Name, t.System()}
					if !slices.ContainsFunc(order, func(x Metric) bool { return x.Name == m.Name }) {
						order = append(order, m)
					}
					samples[k] = append(samples[k], m.Value)
					part := fmt.Sprintf("%s %s %s", m.Name, fmtNum(m.Value), m.Unit)
					if m.SenderBound {
						bound[k]++
						part += " (sender-bound)"
					}
					parts = append(parts, part)
				}
				progress("[%s %d/%d] %-9s %s", c.Name, r, o.Rounds, t.System(), strings.Join(parts, ", "))
			}
		}
		for _, m := range order {
			res := Result{Case: c.Name, Title: c.Title, Metric: m.Name, Unit: m.Unit, HigherBetter: m.HigherBetter, Systems: map[string]*Stat{}}
			for _, t := range topos {
				k := key{m.Name, t.System()}
				if xs := samples[k]; len(xs) > 0 {
					res.Systems[t.System()] = summarise(xs)
					res.Systems[t.System()].SenderBound = bound[k]
				}
			}
			res.Ratio, res.RatioAtLeast = ratioOf(res.Systems["tapswitch"], res.Systems["bridge"], m.Unit)
			res.OVSRatio, res.RatioOVSAtLeast = ratioOf(res.Systems["tapswitch"], res.Systems["ovs"], m.Unit)
			rep.Results = append(rep.Results, res)
		}
	}
	return rep, nil
}

// ratioOf is the ratio of ts's median to other's, and whether it is a
// lower bound: 0 when either is missing, other's median is 0, the unit is
// a percentage (a ratio of losses near zero says nothing), or other's rate
// was its sender's in any round (the ratio would compare senders, and
// flatter tapswitch). When only ts's was, the true ratio is at least this.
func ratioOf(ts, other *Stat, unit string) (float64, bool) {
	if ts == nil || other == nil || other.Median == 0 || unit == "%" || other.SenderBound > 0 {
		return 0, false
	}
	return ts.Median / other.Median, ts.SenderBound > 0
}

// prepare readies the topologies before the first case runs. When a case
// needs more than 2 pods (pods8, pods32), every pod of each topology gets a
// permanent neighbour entry for every other (StaticNeighbours), once: all
// pairs of 32 pods on two systems overflow the kernel's shared neighbour
// table. Installed up front, they hold for every case of the run, so that
// no case sees different neighbour tables depending on the cases before
// it; a run with no such case has none.
func prepare(topos []Topology, cases []Case) error {
	if PodsNeeded(cases) <= 2 {
		return nil
	}
	for _, t := range topos {
		if err := StaticNeighbours(t.Pods()); err != nil {
			return fmt.Errorf("%s: permanent neighbour entries: %w", t.System(), err)
		}
	}
	return nil
}

// fmtNum prints 3 significant digits or so.
func fmtNum(v float64) string {
	switch a := max(v, -v); {
	case a == 0:
		return "0"
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.1f", v)
	case a >= 10:
		return fmt.Sprintf("%.2f", v)
	case a >= 0.1:
		return fmt.Sprintf("%.3f", v)
	default:
		return fmt.Sprintf("%.4f", v)
	}
}
