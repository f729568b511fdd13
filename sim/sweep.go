package sim

import (
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.yaml.in/yaml/v3"
)

// Sweep is a grid of runs of one scenario: every combination of the
// parameters' values (a point), each with every seed. NewSweep checks every
// key and value before anything runs.
type Sweep struct {
	File   string
	Params []Param
	Seeds  []uint64
	Points []Point
}

// Point is one combination of parameter values, in Params order, with the
// scenario tree that has them set.
type Point struct {
	Values []string
	root   *yaml.Node
}

// Label is the point as "key=value key=value".
func (sw *Sweep) Label(p int) string {
	var parts []string
	for i, pr := range sw.Params {
		parts = append(parts, pr.Key+"="+sw.Points[p].Values[i])
	}
	return strings.Join(parts, " ")
}

// Runs is the number of runs: points times seeds.
func (sw *Sweep) Runs() int { return len(sw.Points) * len(sw.Seeds) }

// NewSweep parses the scenario and expands the grid. An unknown key, a
// value the scenario does not accept, or a combination that does not build
// is an error that names the key (and the value); nothing has run by then.
// No seeds means the scenario's own.
func NewSweep(file string, data []byte, params []Param, seeds []uint64) (*Sweep, error) {
	root, err := parseYAML(file, data)
	if err != nil {
		return nil, err
	}
	base, err := parseNode(file, root)
	if err != nil {
		return nil, err
	}
	if len(seeds) == 0 {
		seeds = []uint64{base.Seed}
	}
	sw := &Sweep{File: file, Params: params, Seeds: seeds}
	paths := make([][]string, len(params))
	vals := make([][]*yaml.Node, len(params))
	seen := map[string]string{}
	for i, p := range params {
		if len(p.Values) == 0 {
			return nil, fmt.Errorf("--set %s: no values", p.Key)
		}
		path, err := resolveKey(root, p.Key)
		if err != nil {
			return nil, fmt.Errorf("--set %s: %v", p.Key, err)
		}
		full := strings.Join(path, ".")
		if prev, dup := seen[full]; dup {
			return nil, fmt.Errorf("--set %s: the same key as --set %s", p.Key, prev)
		}
		seen[full] = p.Key
		paths[i] = path
		for _, v := range p.Values {
			n, err := valueNode(v)
			if err != nil {
				return nil, fmt.Errorf("--set %s: %v", p.Key, err)
			}
			// Each value alone, so that an error names it rather than a
			// whole grid point.
			t := cloneNode(root)
			if _, err := setPath(t, path, n, ""); err != nil {
				return nil, fmt.Errorf("--set %s: %v", p.Key, err)
			}
			if err := buildCheck(file, t); err != nil {
				return nil, fmt.Errorf("--set %s=%s: %v", p.Key, v, err)
			}
			vals[i] = append(vals[i], n)
		}
	}
	// The cartesian product, the last parameter varying fastest.
	idx := make([]int, len(params))
	for {
		t := cloneNode(root)
		pt := Point{Values: make([]string, len(params))}
		for i := range params {
			pt.Values[i] = params[i].Values[idx[i]]
			if _, err := setPath(t, paths[i], vals[i][idx[i]], ""); err != nil {
				return nil, fmt.Errorf("--set %s: %v", params[i].Key, err)
			}
		}
		pt.root = t
		sw.Points = append(sw.Points, pt)
		if len(params) > 0 {
			if err := buildCheck(file, t); err != nil {
				return nil, fmt.Errorf("grid point %s: %v", sw.Label(len(sw.Points)-1), err)
			}
		}
		i := len(idx) - 1
		for ; i >= 0; i-- {
			if idx[i]++; idx[i] < len(params[i].Values) {
				break
			}
			idx[i] = 0
		}
		if i < 0 {
			break
		}
	}
	return sw, nil
}

// buildCheck parses and builds a scenario tree without running it.
func buildCheck(file string, root *yaml.Node) error {
	sc, err := parseNode(file, root)
	if err != nil {
		return err
	}
	s, err := New(sc, Options{})
	if err != nil {
		return err
	}
	s.closeCaptures()
	return nil
}

// RunResult is one run of a sweep: its point, seed, and flattened metrics.
type RunResult struct {
	Point   int
	Seed    uint64
	Stopped string
	Passed  bool
	Metrics Row
	Err     error // an output error of the run (none is written by sweeps)
}

// SweepOptions control how a sweep runs.
type SweepOptions struct {
	Workers int // 0: GOMAXPROCS
	// Progress, when set, is called after each run with the runs done so
	// far; it is called from one goroutine at a time.
	Progress func(done, total int)
}

// Run runs every point with every seed on Workers goroutines. Each run is
// a Sim of its own, and results are kept by (point, seed), so the outcome
// does not depend on Workers or on which run finishes first.
func (sw *Sweep) Run(opts SweepOptions) []RunResult {
	total := sw.Runs()
	out := make([]RunResult, total)
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, total)
	var next, done atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= total {
					return
				}
				out[i] = sw.runOne(i/len(sw.Seeds), sw.Seeds[i%len(sw.Seeds)])
				d := int(done.Add(1))
				if opts.Progress != nil {
					mu.Lock()
					opts.Progress(d, total)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return out
}

func (sw *Sweep) runOne(p int, seed uint64) RunResult {
	rr := RunResult{Point: p, Seed: seed}
	sc, err := parseNode(sw.File, sw.Points[p].root)
	if err != nil { // checked by NewSweep
		rr.Err = err
		return rr
	}
	res, err := Run(sc, Options{Seed: seed, SeedSet: true})
	if err != nil {
		rr.Err = err
		if res == nil {
			return rr
		}
	}
	rr.Stopped, rr.Passed = res.Stopped, res.Passed
	rr.Metrics = Flatten(res)
	return rr
}

// Row is a run's scalar metrics by name, in the order Flatten found them.
type Row struct {
	Names  []string
	Values []float64
}

// Get returns the metric called name, and whether the row has it.
func (r Row) Get(name string) (float64, bool) {
	for i, n := range r.Names {
		if n == name {
			return r.Values[i], true
		}
	}
	return 0, false
}

// notMetrics are fields of the Result that describe the scenario rather
// than measure the run: ports' settings, names, and the assertions (whose
// verdict is in passed and failed).
var notMetrics = map[string]bool{
	"scenario": true, "seed": true, "stopped": true, "assertions": true, "name": true, "from": true, "to": true,
	"id": true, "pvid": true, "trunk": true, "hairpin": true, "mtu": true, "storm": true, "lock_mac": true, "allowed": true,
}

// Flatten turns a Result into named scalars: the JSON field path, with
// list items named by their name (switches.cbr0.fdb.refused,
// switches.cbr0.ports.pod1.counters.drops.storm, links.pod1--cbr0.lost,
// flows.f1.received, pings.p1.rtt_avg_ns). Booleans are 0 or 1. A real
// dataplane's Result flattens to the same names, which is what a
// comparison lines up.
func Flatten(r *Result) Row {
	b, err := json.Marshal(r)
	if err != nil {
		return Row{}
	}
	var v any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return Row{}
	}
	var row Row
	flattenInto(&row, "", v)
	return row
}

func flattenInto(row *Row, prefix string, v any) {
	join := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if notMetrics[k] && !strings.HasSuffix(prefix, ".drops") {
				continue
			}
			flattenInto(row, join(k), x[k])
		}
	case []any:
		for i, it := range x {
			key := fmt.Sprint(i)
			if m, ok := it.(map[string]any); ok {
				if n, ok := m["name"].(string); ok {
					key = n
				}
			}
			flattenInto(row, join(key), it)
		}
	case json.Number:
		f, err := x.Float64()
		if err == nil {
			row.Names = append(row.Names, prefix)
			row.Values = append(row.Values, f)
		}
	case bool:
		f := 0.0
		if x {
			f = 1
		}
		row.Names = append(row.Names, prefix)
		row.Values = append(row.Values, f)
	}
}

// Columns is the union of the runs' metric names, sorted. A metric a run
// lacks (a drop reason that never happened) is 0 in that run.
func Columns(runs []RunResult) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range runs {
		for _, n := range r.Metrics.Names {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Stat summarises one metric over a grid point's runs: mean, min, max and
// the 95% confidence interval of the mean (Student's t with n-1 degrees of
// freedom; with one run the interval is the value itself).
type Stat struct {
	N      int     `json:"n"`
	Mean   float64 `json:"mean"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	SD     float64 `json:"sd"`
	CILow  float64 `json:"ci95_low"`
	CIHigh float64 `json:"ci95_high"`
}

// Summarise computes a Stat of xs.
func Summarise(xs []float64) Stat {
	st := Stat{N: len(xs)}
	if len(xs) == 0 {
		return st
	}
	st.Min, st.Max = math.Inf(1), math.Inf(-1)
	var sum float64
	for _, x := range xs {
		sum += x
		st.Min, st.Max = math.Min(st.Min, x), math.Max(st.Max, x)
	}
	st.Mean = sum / float64(len(xs))
	st.CILow, st.CIHigh = st.Mean, st.Mean
	if len(xs) < 2 {
		return st
	}
	var ss float64
	for _, x := range xs {
		ss += (x - st.Mean) * (x - st.Mean)
	}
	st.SD = math.Sqrt(ss / float64(len(xs)-1))
	h := TQuantile975(len(xs)-1) * st.SD / math.Sqrt(float64(len(xs)))
	st.CILow, st.CIHigh = st.Mean-h, st.Mean+h
	return st
}

// t975 is the 0.975 quantile of Student's t for 1-30 degrees of freedom.
var t975 = [...]float64{
	12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
	2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
	2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
}

// TQuantile975 is the 0.975 quantile of Student's t with df degrees of
// freedom: the factor of a two-sided 95% interval. Up to 30 from the
// table, beyond it from the Cornish-Fisher expansion around the normal
// quantile (good to 1e-5 there).
func TQuantile975(df int) float64 {
	if df < 1 {
		return math.NaN()
	}
	if df <= len(t975) {
		return t975[df-1]
	}
	const z = 1.959963984540054
	n := float64(df)
	z3, z5, z7, z9 := z*z*z, math.Pow(z, 5), math.Pow(z, 7), math.Pow(z, 9)
	return z + (z3+z)/(4*n) + (5*z5+16*z3+3*z)/(96*n*n) +
		(3*z7+19*z5+17*z3-15*z)/(384*n*n*n) +
		(79*z9+776*z7+1482*z5-1920*z3-945*z)/(92160*n*n*n*n)
}

// PointSummary is the summary of one grid point: its values, how many runs
// passed their assertions, and a Stat per metric.
type PointSummary struct {
	Point   int             `json:"point"`
	Params  []string        `json:"params"`
	Runs    int             `json:"runs"`
	Passed  int             `json:"passed"`
	Stopped map[string]int  `json:"stopped"`
	Metrics map[string]Stat `json:"metrics"`
}

// Summary summarises the runs per grid point over the given columns.
func (sw *Sweep) Summary(runs []RunResult, cols []string) []PointSummary {
	out := make([]PointSummary, len(sw.Points))
	byPoint := make([][]RunResult, len(sw.Points))
	for _, r := range runs {
		byPoint[r.Point] = append(byPoint[r.Point], r)
	}
	for p := range sw.Points {
		ps := PointSummary{Point: p, Params: sw.Points[p].Values, Runs: len(byPoint[p]), Stopped: map[string]int{}, Metrics: map[string]Stat{}}
		for _, r := range byPoint[p] {
			if r.Passed {
				ps.Passed++
			}
			ps.Stopped[r.Stopped]++
		}
		idx := make([]map[string]float64, len(byPoint[p]))
		for i, r := range byPoint[p] {
			idx[i] = r.Metrics.index()
		}
		xs := make([]float64, len(byPoint[p]))
		for _, c := range cols {
			for i := range byPoint[p] {
				xs[i] = idx[i][c]
			}
			ps.Metrics[c] = Summarise(xs)
		}
		out[p] = ps
	}
	return out
}

// fmtETA renders a remaining time for the progress line.
func fmtETA(d time.Duration) string {
	if d < time.Second {
		return "<1s"
	}
	return d.Round(time.Second).String()
}
