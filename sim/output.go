package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tapswitch/tapswitch/arp"
	"github.com/tapswitch/tapswitch/fdb"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

// Result is the summary of a run; `tapswitch sim -o json` prints it.
// Times are nanoseconds of simulated time.
type Result struct {
	Scenario   string            `json:"scenario"`
	Seed       uint64            `json:"seed"`
	End        time.Duration     `json:"end_ns"`
	Stopped    string            `json:"stopped"`
	Events     uint64            `json:"events"`
	Deliveries uint64            `json:"deliveries"`
	Passed     bool              `json:"passed"`
	Failed     int               `json:"failed"`
	Assertions []AssertionResult `json:"assertions"`
	Pings      []PingResult      `json:"pings,omitempty"`
	Arpings    []ArpingResult    `json:"arpings,omitempty"`
	Flows      []FlowResult      `json:"flows,omitempty"`
	Switches   []SwitchResult    `json:"switches"`
	Links      []LinkResult      `json:"links"`
	Hosts      []HostResult      `json:"hosts"`
	// Dataplane names where a run that is not the simulator's ran ("real
	// node": tapswitch sim --real); empty for the simulator. Events and
	// deliveries are the simulator's and stay 0 there.
	Dataplane string `json:"dataplane,omitempty"`
}

// PingResult is one ping action's outcome.
type PingResult struct {
	Name       string        `json:"name"`
	From       string        `json:"from"`
	To         string        `json:"to"`
	Sent       int           `json:"sent"`
	Received   int           `json:"received"`
	Lost       int           `json:"lost"`
	Duplicates int           `json:"duplicates"`
	Errors     int           `json:"errors"`
	RTTMin     time.Duration `json:"rtt_min_ns"`
	RTTAvg     time.Duration `json:"rtt_avg_ns"`
	RTTMax     time.Duration `json:"rtt_max_ns"`
	TTL        int           `json:"ttl"` // of the last reply, -1 for none
}

// ArpingResult is one arping action's outcome.
type ArpingResult struct {
	Name    string `json:"name"`
	From    string `json:"from"`
	To      string `json:"to"`
	Sent    int    `json:"sent"`
	Replies int    `json:"replies"`
}

// FlowResult is one UDP flow's outcome.
type FlowResult struct {
	Name       string `json:"name"`
	From       string `json:"from"`
	To         string `json:"to"`
	Sent       int    `json:"sent"`
	Received   int    `json:"received"`
	Lost       int    `json:"lost"`
	Duplicates int    `json:"duplicates"`
}

// SwitchResult is a switch's totals at the end: what its tracer counted,
// its tables' counters and its ports.
type SwitchResult struct {
	Name       string             `json:"name"`
	Rx         uint64             `json:"rx_frames"`
	Tx         uint64             `json:"tx_frames"`
	Flooded    uint64             `json:"flooded"`
	Unknown    uint64             `json:"unknown_unicast"`
	Dropped    uint64             `json:"dropped"`
	FloodRatio float64            `json:"flood_ratio"`
	FDB        fdb.Stats          `json:"fdb"`
	ARP        arp.Stats          `json:"arp"`
	Ports      []vswitch.PortInfo `json:"ports"`
}

// LinkResult is a link's totals.
type LinkResult struct {
	Name       string `json:"name"`
	Up         bool   `json:"up"`
	Delivered  uint64 `json:"delivered"`
	Lost       uint64 `json:"lost"`
	QueueDrops uint64 `json:"queue_drops"`
	DownDrops  uint64 `json:"down_drops"`
}

// HostResult is a host's counters.
type HostResult struct {
	Name        string `json:"name"`
	Ignored     uint64 `json:"ignored"` // frames for other MACs (floods) and filler
	Forwarded   uint64 `json:"forwarded,omitempty"`
	TTLExceeded uint64 `json:"ttl_exceeded,omitempty"`
	NoRoute     uint64 `json:"no_route,omitempty"`
	ARPFailed   uint64 `json:"arp_failed,omitempty"`
	Dropped     uint64 `json:"dropped,omitempty"`
	ARPCache    int    `json:"arp_cache"`
}

// linkResults is every link's totals, in link order. The run's result and
// the metrics JSON both carry them and must agree.
func (s *Sim) linkResults() []LinkResult {
	var out []LinkResult
	for _, l := range s.links {
		out = append(out, LinkResult{Name: l.name, Up: l.up, Delivered: l.delivered, Lost: l.lost, QueueDrops: l.queueDrops, DownDrops: l.downDrops})
	}
	return out
}

func (s *Sim) result() *Result {
	r := &Result{
		Scenario: s.name(), Seed: s.seed, End: time.Duration(s.now), Stopped: s.stopped,
		Events: s.events, Deliveries: s.delivered, Passed: true,
	}
	for _, c := range s.checks {
		r.Assertions = append(r.Assertions, c.res)
		if !c.res.Pass {
			r.Passed = false
			r.Failed++
		}
	}
	for _, p := range s.pings {
		pr := PingResult{
			Name: p.spec.Name, From: p.spec.From, To: p.spec.To, Sent: p.sent, Received: p.received,
			Lost: p.sent - p.received, Duplicates: p.dups, Errors: p.errors, TTL: p.ttl,
			RTTMin: time.Duration(p.rttMin), RTTMax: time.Duration(p.rttMax),
		}
		if p.received > 0 {
			pr.RTTAvg = time.Duration(p.rttSum / int64(p.received))
		}
		r.Pings = append(r.Pings, pr)
	}
	for _, a := range s.arpings {
		r.Arpings = append(r.Arpings, ArpingResult{Name: a.spec.Name, From: a.spec.From, To: a.spec.To, Sent: a.sent, Replies: a.replies})
	}
	for _, f := range s.flows {
		r.Flows = append(r.Flows, FlowResult{Name: f.spec.Name, From: f.spec.From, To: f.spec.To, Sent: f.sent, Received: f.received, Lost: f.sent - f.received, Duplicates: f.dups})
	}
	for _, n := range s.switches {
		sr := SwitchResult{
			Name: n.name, Rx: n.rx, Tx: n.copies, Flooded: n.flooded, Unknown: n.unknown, Dropped: n.dropped,
			FDB: n.sw.FDB().Stats(), ARP: n.sw.ARP().Stats(), Ports: n.sw.Ports(),
		}
		if n.rx > 0 {
			sr.FloodRatio = float64(n.flooded) / float64(n.rx)
		}
		r.Switches = append(r.Switches, sr)
	}
	r.Links = s.linkResults()
	for _, h := range s.hosts {
		r.Hosts = append(r.Hosts, HostResult{
			Name: h.name, Ignored: h.ignored, Forwarded: h.forwarded, TTLExceeded: h.ttlExceeded,
			NoRoute: h.noRoute, ARPFailed: h.arpFailed, Dropped: h.dropped, ARPCache: len(h.cache),
		})
	}
	return r
}

// WriteText prints a result for people: outcomes, switch totals, and the
// assertions.
func (r *Result) WriteText(w io.Writer) error {
	var b strings.Builder
	if r.Dataplane != "" {
		fmt.Fprintf(&b, "\n%s: %v on the %s (stopped: %s), seed %d\n", r.Scenario, r.End, r.Dataplane, r.Stopped, r.Seed)
	} else {
		fmt.Fprintf(&b, "\n%s: %v simulated (stopped: %s), %d events, %d frame deliveries, seed %d\n",
			r.Scenario, r.End, r.Stopped, r.Events, r.Deliveries, r.Seed)
	}
	if len(r.Pings) > 0 && len(r.Pings) <= 50 {
		b.WriteString("pings:\n")
		for _, p := range r.Pings {
			fmt.Fprintf(&b, "  %-24s %d/%d received, %d lost", p.Name, p.Received, p.Sent, p.Lost)
			if p.Duplicates > 0 {
				fmt.Fprintf(&b, ", %d duplicates", p.Duplicates)
			}
			if p.Errors > 0 {
				fmt.Fprintf(&b, ", %d errors", p.Errors)
			}
			if p.Received > 0 {
				fmt.Fprintf(&b, ", rtt %v/%v/%v, ttl %d", p.RTTMin, p.RTTAvg, p.RTTMax, p.TTL)
			}
			b.WriteByte('\n')
		}
	} else if len(r.Pings) > 50 {
		var sent, got int
		for _, p := range r.Pings {
			sent, got = sent+p.Sent, got+p.Received
		}
		fmt.Fprintf(&b, "pings: %d actions, %d/%d received\n", len(r.Pings), got, sent)
	}
	for _, a := range r.Arpings {
		fmt.Fprintf(&b, "  %-24s %d replies to %d requests\n", a.Name, a.Replies, a.Sent)
	}
	if len(r.Flows) > 0 {
		b.WriteString("flows:\n")
		for _, f := range r.Flows {
			fmt.Fprintf(&b, "  %-24s %d/%d received, %d lost", f.Name, f.Received, f.Sent, f.Lost)
			if f.Duplicates > 0 {
				fmt.Fprintf(&b, ", %d duplicates", f.Duplicates)
			}
			b.WriteByte('\n')
		}
	}
	if len(r.Switches) <= 20 {
		b.WriteString("switches:\n")
		for _, sw := range r.Switches {
			fmt.Fprintf(&b, "  %s: rx %d, tx %d, flooded %d (unknown unicast %d), dropped %d, flood ratio %.3f; fdb %d entries (learned %d, moved %d, aged %d, evicted %d, refused %d)",
				sw.Name, sw.Rx, sw.Tx, sw.Flooded, sw.Unknown, sw.Dropped, sw.FloodRatio,
				sw.FDB.Entries, sw.FDB.Learned, sw.FDB.Moved, sw.FDB.Aged, sw.FDB.Evicted, sw.FDB.Refused)
			if sw.ARP.Suppressed > 0 || sw.ARP.GuardDrops > 0 {
				fmt.Fprintf(&b, "; arp suppressed %d, guard drops %d", sw.ARP.Suppressed, sw.ARP.GuardDrops)
			}
			b.WriteByte('\n')
			if len(sw.Ports) <= 20 {
				for _, p := range sw.Ports {
					c := p.Counters
					fmt.Fprintf(&b, "    port %d %-12s rx %d tx %d flooded %d", p.ID, p.Name, c.RxFrames, c.TxFrames, c.Flooded)
					if c.Dropped() > 0 {
						fmt.Fprintf(&b, " drops %v", c.DropMap)
					}
					fmt.Fprintf(&b, " fdb %d\n", p.FDB)
				}
			}
		}
	}
	for _, l := range r.Links {
		if l.Lost+l.QueueDrops+l.DownDrops > 0 {
			fmt.Fprintf(&b, "link %s: %d delivered, %d lost, %d tail-dropped, %d dropped while down\n", l.Name, l.Delivered, l.Lost, l.QueueDrops, l.DownDrops)
		}
	}
	fmt.Fprintf(&b, "assertions: %d passed, %d failed\n", len(r.Assertions)-r.Failed, r.Failed)
	for _, a := range r.Assertions {
		fmt.Fprintf(&b, "  %s\n", a.String())
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// metrics collects the series the metrics JSON carries. The previous sample
// of a switch, which flood ratios are taken against, is the last one in its
// series (or none), so it is not kept separately.
type metrics struct {
	switches [][]Sample
	links    []LinkSample
}

// Metrics is the metrics JSON: per-switch series sampled every tick, the
// final per-port counters, and link totals. It holds only simulated
// quantities, so the same seed gives the same bytes.
type Metrics struct {
	Scenario   string          `json:"scenario"`
	Seed       uint64          `json:"seed"`
	Tick       time.Duration   `json:"tick_ns"`
	End        time.Duration   `json:"end_ns"`
	Stopped    string          `json:"stopped"`
	Events     uint64          `json:"events"`
	Deliveries uint64          `json:"deliveries"`
	Switches   []SwitchMetrics `json:"switches"`
	Links      []LinkResult    `json:"links"`
	// LinkBandwidth is each link's bandwidth in bits/s (0: unlimited), in
	// link order, and LinkSeries their bytes sent per direction at every
	// sample: link utilisation is the difference over the interval.
	LinkBandwidth []int64      `json:"link_bandwidth"`
	LinkSeries    []LinkSample `json:"link_series"`
}

// LinkSample is every link's cumulative bytes sent, a to b and b to a, at
// one instant, in link order.
type LinkSample struct {
	T     time.Duration `json:"t_ns"`
	Bytes [][2]uint64   `json:"bytes"`
}

// SwitchMetrics is one switch's series and final counters.
type SwitchMetrics struct {
	Name   string   `json:"name"`
	Series []Sample `json:"series"`
	// PortNames names the entries of a sample's per-port lists: every
	// port the switch ever had, in the order it got them.
	PortNames []string           `json:"port_names"`
	FDB       fdb.Stats          `json:"fdb"`
	ARP       arp.Stats          `json:"arp"`
	Ports     []vswitch.PortInfo `json:"ports"`
}

// Sample is a switch at one instant: cumulative counters, the FDB size, and
// the flood ratio of the interval since the previous sample.
type Sample struct {
	T          time.Duration `json:"t_ns"`
	FDBEntries int           `json:"fdb_entries"`
	Rx         uint64        `json:"rx_frames"`
	Tx         uint64        `json:"tx_frames"`
	Flooded    uint64        `json:"flooded"`
	Unknown    uint64        `json:"unknown_unicast"`
	Dropped    uint64        `json:"dropped"`
	FloodRatio float64       `json:"flood_ratio"`
	ARPEntries int           `json:"arp_entries"` // snooped neighbours
	// FDB learning, cumulative: entries learned, evicted (evict-fair) and
	// refused at a limit.
	FDBLearned uint64   `json:"fdb_learned"`
	FDBEvicted uint64   `json:"fdb_evicted"`
	FDBRefused uint64   `json:"fdb_refused"`
	PortRx     []uint64 `json:"port_rx"` // by port, in the order of ports
	PortTx     []uint64 `json:"port_tx"`
	PortFDB    []int    `json:"port_fdb"` // FDB entries on the port
	// PortDrops is the switch's cumulative drops by reason and port, for
	// the reasons that dropped anything.
	PortDrops map[string][]uint64 `json:"port_drops,omitempty"`
}

func (s *Sim) sample() {
	m := s.metrics
	for len(m.switches) < len(s.switches) {
		m.switches = append(m.switches, nil)
	}
	for i, n := range s.switches {
		var last Sample
		if k := len(m.switches[i]); k > 0 {
			if last = m.switches[i][k-1]; last.T == time.Duration(s.now) {
				continue
			}
		}
		fs := n.sw.FDB().Stats()
		sm := Sample{
			T: time.Duration(s.now), FDBEntries: fs.Entries, ARPEntries: n.sw.ARP().Stats().Neighbours,
			FDBLearned: fs.Learned, FDBEvicted: fs.Evicted, FDBRefused: fs.Refused,
			Rx: n.rx, Tx: n.copies, Flooded: n.flooded, Unknown: n.unknown, Dropped: n.dropped,
		}
		if d := sm.Rx - last.Rx; d > 0 {
			sm.FloodRatio = float64(sm.Flooded-last.Flooded) / float64(d)
		}
		info := map[fdb.PortID]*vswitch.PortInfo{}
		ports := n.sw.Ports()
		for j := range ports {
			info[ports[j].ID] = &ports[j]
		}
		k := 0
		for id, e := range n.portEP {
			if e < 0 {
				continue
			}
			sm.PortRx = append(sm.PortRx, s.eps[e].frames[rx])
			sm.PortTx = append(sm.PortTx, s.eps[e].frames[tx])
			fdbN := 0
			if pi := info[fdb.PortID(id)]; pi != nil {
				fdbN = pi.FDB
				for r, c := range pi.Counters.Drops {
					if c == 0 {
						continue
					}
					if sm.PortDrops == nil {
						sm.PortDrops = map[string][]uint64{}
					}
					name := vswitch.DropReason(r).String()
					if sm.PortDrops[name] == nil {
						sm.PortDrops[name] = make([]uint64, len(n.portEP))
					}
					sm.PortDrops[name][k] = c
				}
			}
			sm.PortFDB = append(sm.PortFDB, fdbN)
			k++
		}
		for name, v := range sm.PortDrops {
			sm.PortDrops[name] = v[:k]
		}
		m.switches[i] = append(m.switches[i], sm)
	}
	if k := len(m.links); k == 0 || m.links[k-1].T != time.Duration(s.now) {
		ls := LinkSample{T: time.Duration(s.now), Bytes: make([][2]uint64, len(s.links))}
		for i, l := range s.links {
			ls.Bytes[i] = l.txBytes
		}
		m.links = append(m.links, ls)
	}
}

// Metrics returns what the run collected for the metrics JSON: nil unless
// Options.Metrics or Options.CollectMetrics asked for it, and complete once
// Run has returned.
func (s *Sim) Metrics() *Metrics {
	if s.metrics == nil {
		return nil
	}
	out := &Metrics{
		Scenario: s.name(), Seed: s.seed, Tick: time.Duration(s.tick), End: time.Duration(s.now),
		Stopped: s.stopped, Events: s.events, Deliveries: s.delivered, LinkSeries: s.metrics.links,
	}
	for i, n := range s.switches {
		sm := SwitchMetrics{
			Name: n.name, FDB: n.sw.FDB().Stats(), ARP: n.sw.ARP().Stats(), Ports: n.sw.Ports(),
		}
		if i < len(s.metrics.switches) {
			sm.Series = s.metrics.switches[i]
		}
		for _, e := range n.portEP {
			if e >= 0 {
				_, port := splitRef(s.eps[e].portName)
				sm.PortNames = append(sm.PortNames, port)
			}
		}
		out.Switches = append(out.Switches, sm)
	}
	out.Links = s.linkResults()
	for _, l := range s.links {
		out.LinkBandwidth = append(out.LinkBandwidth, l.bps)
	}
	return out
}

func (s *Sim) writeMetrics(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(s.Metrics())
}
