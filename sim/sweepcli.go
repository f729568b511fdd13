package sim

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// SweepCLI is one `tapswitch sim sweep` invocation; the cobra command
// fills it from flags, tests call Run directly.
type SweepCLI struct {
	File       string   // scenario file or shipped name
	Sets       []string // --set KEY=V1,V2 ...
	Seeds      string   // --seeds "1-50"; empty: the scenario's seed
	Workers    int      // -j; 0: GOMAXPROCS
	CSVFile    string   // every run's metrics
	JSONFile   string   // every run's metrics and the summary
	Plot       string   // PNG of PlotMetric against PlotX
	PlotMetric string
	PlotX      string   // a --set key; empty: the first
	Show       []string // metrics summarised on stdout, after PlotMetric; none: deliveries
	Quiet      bool     // no progress
	JSON       bool     // summary on stdout as JSON
	// Stderr gets the progress; StderrTTY says it is a terminal (a line
	// rewritten in place) rather than a file or pipe (only a final line).
	Stderr    io.Writer
	StderrTTY bool
}

// Run runs the sweep and returns the exit status: ExitOK when every run
// passed its assertions, ExitFailed when one did not or an output could not
// be written, ExitBadScenario for a bad scenario, key, value or flag
// (before anything runs).
func (c SweepCLI) Run(stdout io.Writer) (int, error) {
	name, data, err := CLI{File: c.File}.load()
	if err != nil {
		return ExitBadScenario, err
	}
	var params []Param
	for _, s := range c.Sets {
		p, err := ParseSet(s)
		if err != nil {
			return ExitBadScenario, err
		}
		params = append(params, p)
	}
	var seeds []uint64
	if c.Seeds != "" {
		if seeds, err = ParseSeeds(c.Seeds); err != nil {
			return ExitBadScenario, err
		}
	}
	if c.Workers < 0 {
		return ExitBadScenario, fmt.Errorf("-j %d: want 1 or more (0: one per CPU)", c.Workers)
	}
	if c.Plot != "" && c.PlotMetric == "" {
		return ExitBadScenario, fmt.Errorf("--plot needs --plot-metric NAME (a column of the CSV)")
	}
	if c.Plot != "" && len(c.Sets) == 0 {
		return ExitBadScenario, fmt.Errorf("--plot needs a swept parameter (--set) to plot against")
	}
	sw, err := NewSweep(name, data, params, seeds)
	if err != nil {
		return ExitBadScenario, err
	}
	px := 0
	if c.PlotX != "" {
		px = -1
		for i, p := range params {
			if p.Key == c.PlotX {
				px = i
			}
		}
		if px < 0 {
			return ExitBadScenario, fmt.Errorf("--plot-x %s: not one of the --set keys", c.PlotX)
		}
	}
	workers := c.Workers
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, sw.Runs())
	pr := &progress{w: c.Stderr, tty: c.StderrTTY, start: time.Now()}
	opts := SweepOptions{Workers: workers}
	if !c.Quiet && c.Stderr != nil && c.StderrTTY {
		opts.Progress = pr.update
	}
	runs := sw.Run(opts)
	cols := Columns(runs)
	passed := 0
	for _, r := range runs {
		if r.Err != nil {
			return ExitFailed, fmt.Errorf("run of %s seed %d: %w", sw.Label(r.Point), r.Seed, r.Err)
		}
		if r.Passed {
			passed++
		}
	}
	if !c.Quiet && c.Stderr != nil {
		pr.finish(len(runs), workers, passed)
	}
	show := c.Show
	if c.PlotMetric != "" && !contains(show, c.PlotMetric) {
		show = append([]string{c.PlotMetric}, show...)
	}
	if len(show) == 0 {
		show = []string{"deliveries"}
	}
	for _, m := range append(show, c.PlotMetric) {
		if m != "" && !contains(cols, m) {
			return ExitBadScenario, fmt.Errorf("metric %q: no run has it (the CSV header lists every metric)", m)
		}
	}
	sum := sw.Summary(runs, cols)
	if c.CSVFile != "" {
		if err := writeOutput(c.CSVFile, func(w io.Writer) error { return sw.WriteCSV(w, runs, cols) }); err != nil {
			return ExitFailed, err
		}
	}
	if c.JSONFile != "" {
		if err := writeOutput(c.JSONFile, func(w io.Writer) error { return sw.WriteJSON(w, runs, cols, sum) }); err != nil {
			return ExitFailed, err
		}
	}
	if c.Plot != "" {
		if err := PlotSweep(sw, sum, c.PlotMetric, px, c.Plot); err != nil {
			return ExitFailed, err
		}
	}
	if c.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(sum); err != nil {
			return ExitFailed, err
		}
	} else if err := sw.WriteSummary(stdout, sum, show); err != nil {
		return ExitFailed, err
	}
	if passed < len(runs) {
		return ExitFailed, fmt.Errorf("%s: %d of %d runs failed an assertion", strings.TrimSuffix(name, ".yaml"), len(runs)-passed, len(runs))
	}
	return ExitOK, nil
}

func writeOutput(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}

// progress prints "sweep: 17/40 runs, 3s, ETA 4s" on a terminal, rewritten
// in place at most ten times a second, and a final line anywhere.
type progress struct {
	w     io.Writer
	tty   bool
	start time.Time
	last  time.Time
}

func (p *progress) update(done, total int) {
	now := time.Now()
	if done < total && now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last = now
	el := now.Sub(p.start)
	eta := time.Duration(float64(el) / float64(done) * float64(total-done))
	fmt.Fprintf(p.w, "\rsweep: %d/%d runs (%d%%), %s, ETA %s   ", done, total, done*100/total, el.Round(100*time.Millisecond), fmtETA(eta))
}

func (p *progress) finish(runs, workers, passed int) {
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintf(p.w, "sweep: %d runs in %s on %d workers, %d passed their assertions\n", runs, time.Since(p.start).Round(10*time.Millisecond), workers, passed)
}

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// WriteCSV writes one row per run: point, the parameters, seed, passed,
// stopped, then every metric column (0 where a run lacks it).
func (sw *Sweep) WriteCSV(w io.Writer, runs []RunResult, cols []string) error {
	cw := csv.NewWriter(w)
	head := []string{"point"}
	for _, p := range sw.Params {
		head = append(head, p.Key)
	}
	head = append(head, "seed", "passed", "stopped")
	head = append(head, cols...)
	if err := cw.Write(head); err != nil {
		return err
	}
	rec := make([]string, len(head))
	for _, r := range runs {
		rec = rec[:0]
		rec = append(rec, strconv.Itoa(r.Point))
		rec = append(rec, sw.Points[r.Point].Values...)
		rec = append(rec, strconv.FormatUint(r.Seed, 10), strconv.FormatBool(r.Passed), r.Stopped)
		vals := r.Metrics.index()
		for _, c := range cols {
			rec = append(rec, fmtFloat(vals[c]))
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// sweepJSON is the --json file.
type sweepJSON struct {
	Scenario string         `json:"scenario"`
	Params   []paramJSON    `json:"params"`
	Seeds    []uint64       `json:"seeds"`
	Columns  []string       `json:"columns"`
	Runs     []runJSON      `json:"runs"`
	Summary  []PointSummary `json:"summary"`
}

type paramJSON struct {
	Key    string   `json:"key"`
	Values []string `json:"values"`
}

type runJSON struct {
	Point   int                `json:"point"`
	Params  []string           `json:"params"`
	Seed    uint64             `json:"seed"`
	Passed  bool               `json:"passed"`
	Stopped string             `json:"stopped"`
	Metrics map[string]float64 `json:"metrics"`
}

// WriteJSON writes the grid, every run's metrics and the summary.
func (sw *Sweep) WriteJSON(w io.Writer, runs []RunResult, cols []string, sum []PointSummary) error {
	out := sweepJSON{Scenario: strings.TrimSuffix(sw.File, ".yaml"), Seeds: sw.Seeds, Columns: cols, Summary: sum}
	for _, p := range sw.Params {
		out.Params = append(out.Params, paramJSON{Key: p.Key, Values: p.Values})
	}
	for _, r := range runs {
		out.Runs = append(out.Runs, runJSON{Point: r.Point, Params: sw.Points[r.Point].Values, Seed: r.Seed, Passed: r.Passed, Stopped: r.Stopped, Metrics: r.Metrics.index()})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(out)
}

// WriteSummary prints one line per grid point and metric: the mean, its
// 95% interval, min and max.
func (sw *Sweep) WriteSummary(w io.Writer, sum []PointSummary, show []string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d points x %d seeds = %d runs\n", strings.TrimSuffix(sw.File, ".yaml"), len(sw.Points), len(sw.Seeds), sw.Runs())
	for _, ps := range sum {
		label := sw.Label(ps.Point)
		if label == "" {
			label = "(the scenario as it is)"
		}
		fmt.Fprintf(&b, "%s: %d/%d passed\n", label, ps.Passed, ps.Runs)
		for _, m := range show {
			st := ps.Metrics[m]
			fmt.Fprintf(&b, "  %-40s mean %-12s 95%% CI [%s, %s]  min %s  max %s\n", m, fmtStat(st.Mean), fmtStat(st.CILow), fmtStat(st.CIHigh), fmtStat(st.Min), fmtStat(st.Max))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func fmtStat(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

// index is the row as a map.
func (r Row) index() map[string]float64 {
	m := make(map[string]float64, len(r.Names))
	for i, n := range r.Names {
		m[n] = r.Values[i]
	}
	return m
}
