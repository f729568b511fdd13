package simreal

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/tapswitch/tapswitch/sim"
)

// Tolerances of a comparison, by kind of quantity. Which hosts received
// what, what the tables learned, drops and delivered counts are exact;
// times and traffic volumes get a band, because the pods' kernels send
// what the simulated hosts do not (neighbour probes and refreshes on
// their own timers) and real time jitters.
const (
	// RTTBand: a ping's minimum and average round-trip times agree within
	// this many nanoseconds, its maximum within RTTMaxBand. On the real
	// node a reply can wait for the scheduler of a loaded machine (a
	// flood in the next namespace, other tests), which says nothing about
	// the switch; the bands catch what does, a reply that waited for a
	// retry (ARP's is a second) or never came.
	RTTBand    = 50e6
	RTTMaxBand = 500e6
	// CountBand: frame counts agree when both are zero or both are not,
	// and they differ by at most CountAbs frames or CountRel of the larger.
	CountAbs = 4
	CountRel = 0.05
	// RatioBand: flood ratios agree within this.
	RatioBand = 0.05
)

// Row is one line of a comparison.
type Row struct {
	Kind      string `json:"kind"` // assertion, metric, fdb, neighbour
	Name      string `json:"name"`
	Sim       string `json:"sim"`
	Real      string `json:"real"`
	Tolerance string `json:"tolerance"`
	Agree     bool   `json:"agree"`
}

// Comparison is a scenario run on the simulator and on the real node, side
// by side.
type Comparison struct {
	Scenario  string `json:"scenario"`
	Agree     bool   `json:"agree"`
	Disagreed int    `json:"disagreed"`
	Rows      []Row  `json:"rows"`
}

// RunCompare runs sc on the simulator and then on the real node, and
// compares the two. A scenario the real node cannot realise is refused
// (a *sim.Error) before either runs.
func RunCompare(ctx context.Context, sc *sim.Scenario, o Options) (*Comparison, error) {
	if err := Check(sc); err != nil {
		return nil, err
	}
	if err := needRoot(); err != nil {
		return nil, err // before the simulator spends its time
	}
	s, err := sim.New(sc, sim.Options{})
	if err != nil {
		return nil, err
	}
	sres, err := s.Run()
	if err != nil {
		return nil, err
	}
	sf, sn := s.Tables()
	real, err := Run(ctx, sc, o)
	if err != nil {
		return nil, err
	}
	return Compare(&Output{Result: sres, FDB: sf, Neighbours: sn, HostMACs: real.HostMACs}, real), nil
}

// Compare sets a simulated run (a) beside a real one (b).
func Compare(a, b *Output) *Comparison {
	c := &Comparison{Scenario: a.Result.Scenario, Agree: true}
	add := func(r Row) {
		if !r.Agree {
			c.Agree = false
			c.Disagreed++
		}
		c.Rows = append(c.Rows, r)
	}
	verdict := func(p bool) string {
		if p {
			return "ok"
		}
		return "FAIL"
	}
	for i, x := range a.Result.Assertions {
		r := Row{Kind: "assertion", Name: fmt.Sprintf("line %d: %s", x.Line, x.Text), Sim: verdict(x.Pass) + " (" + x.Got + ")", Tolerance: "exact"}
		if i < len(b.Result.Assertions) {
			y := b.Result.Assertions[i]
			r.Real = verdict(y.Pass) + " (" + y.Got + ")"
			r.Agree = x.Pass == y.Pass
		}
		add(r)
	}
	ra, rb := sim.Flatten(a.Result), sim.Flatten(b.Result)
	names := map[string]bool{}
	for _, n := range ra.Names {
		names[n] = true
	}
	for _, n := range rb.Names {
		names[n] = true
	}
	var sorted []string
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		tol, ok := tolerance(n)
		if !ok {
			continue
		}
		x, _ := ra.Get(n)
		y, _ := rb.Get(n)
		add(Row{Kind: "metric", Name: n, Sim: num(x), Real: num(y), Tolerance: tol, Agree: within(tol, x, y)})
	}
	fa, fb := fdbRows(a), fdbRows(b)
	for _, k := range keys(fa, fb) {
		add(Row{Kind: "fdb", Name: k, Sim: orNone(fa[k]), Real: orNone(fb[k]), Tolerance: "exact", Agree: fa[k] == fb[k]})
	}
	na, nb := map[string]string{}, map[string]string{}
	for _, e := range a.Neighbours {
		na[fmt.Sprintf("%s vlan %d %s", e.Switch, e.VLAN, e.IP)] = e.MAC + " on " + e.Port
	}
	for _, e := range b.Neighbours {
		nb[fmt.Sprintf("%s vlan %d %s", e.Switch, e.VLAN, e.IP)] = e.MAC + " on " + e.Port
	}
	for _, k := range keys(na, nb) {
		add(Row{Kind: "neighbour", Name: k, Sim: orNone(na[k]), Real: orNone(nb[k]), Tolerance: "exact", Agree: na[k] == nb[k]})
	}
	return c
}

// fdbRows keys a run's FDB by switch, VLAN and MAC, with the port as the
// value. The MACs of no host (a flood's random sources, which each side
// draws from its own generator) are counted per port instead: how many the
// table holds is what the two runs share, not which.
func fdbRows(o *Output) map[string]string {
	hosts := map[string]bool{}
	for _, m := range o.HostMACs {
		hosts[m] = true
	}
	out := map[string]string{}
	other := map[string]int{}
	for _, e := range o.FDB {
		if hosts[e.MAC] {
			out[fmt.Sprintf("%s vlan %d %s", e.Switch, e.VLAN, e.MAC)] = e.Port
		} else {
			other[fmt.Sprintf("%s vlan %d MACs of no host on %s", e.Switch, e.VLAN, e.Port)]++
		}
	}
	for k, n := range other {
		out[k] = fmt.Sprint(n)
	}
	return out
}

func keys(a, b map[string]string) []string {
	var out []string
	for k := range a {
		out = append(out, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func num(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%.4g", v)
}

// tolerance is the band a metric is compared in, or false for a metric
// with no real counterpart: the event queue's counts and the run's end,
// the cables' counts but their tail drops (a TAP is no cable: its port's
// counters are compared; its drops are the TAP's), the frames a simulated host ignored, and the table's
// capacity (its size in memory), and a host's own counters but its ARP
// cache (a pod's kernel keeps its own, in other terms).
func tolerance(name string) (string, bool) {
	switch {
	case name == "end_ns", name == "events", name == "deliveries", name == "failed",
		strings.HasPrefix(name, "links.") && !strings.HasSuffix(name, ".queue_drops") && !strings.HasSuffix(name, ".up"),
		strings.HasPrefix(name, "hosts.") && !strings.HasSuffix(name, ".arp_cache"),
		strings.HasSuffix(name, ".fdb.capacity"), strings.HasSuffix(name, ".errors"):
		return "", false
	case strings.HasSuffix(name, ".rtt_max_ns"):
		return fmt.Sprintf("±%gms", RTTMaxBand/1e6), true
	case strings.Contains(name, ".rtt_"):
		return fmt.Sprintf("±%gms", RTTBand/1e6), true
	case strings.HasSuffix(name, ".flood_ratio"):
		return fmt.Sprintf("±%g", RatioBand), true
	case strings.HasSuffix(name, "_frames"), strings.HasSuffix(name, "_bytes"),
		strings.HasSuffix(name, ".flooded"), strings.HasSuffix(name, ".unknown_unicast"),
		strings.HasPrefix(name, "switches.") && strings.HasSuffix(name, ".dropped") && !strings.Contains(name, ".drops."),
		strings.HasSuffix(name, ".arp_cache"), strings.HasSuffix(name, ".arp.snooped"):
		return fmt.Sprintf("0 iff 0, ±max(%d, %g%%)", CountAbs, CountRel*100), true
	}
	return "exact", true
}

func within(tol string, x, y float64) bool {
	switch {
	case tol == "exact":
		return x == y
	case tol == fmt.Sprintf("±%gms", RTTMaxBand/1e6):
		return math.Abs(x-y) <= RTTMaxBand
	case strings.HasSuffix(tol, "ms"):
		return math.Abs(x-y) <= RTTBand
	case strings.HasPrefix(tol, "±"):
		return math.Abs(x-y) <= RatioBand
	}
	if (x == 0) != (y == 0) {
		return false
	}
	return math.Abs(x-y) <= math.Max(CountAbs, CountRel*math.Max(math.Abs(x), math.Abs(y)))
}

// WriteText prints the table: every row, the disagreements marked.
func (c *Comparison) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\tKIND\tNAME\tSIM\tREAL\tTOLERANCE\n")
	for _, r := range c.Rows {
		mark := " "
		if !r.Agree {
			mark = "≠"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", mark, r.Kind, r.Name, r.Sim, r.Real, r.Tolerance)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if c.Agree {
		_, err := fmt.Fprintf(w, "%s: the simulator and the real node agree (%d rows)\n", c.Scenario, len(c.Rows))
		return err
	}
	_, err := fmt.Fprintf(w, "%s: %d of %d rows disagree\n", c.Scenario, c.Disagreed, len(c.Rows))
	return err
}

// WriteJSON prints the comparison as JSON.
func (c *Comparison) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(c)
}
