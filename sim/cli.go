package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Exit statuses of `tapswitch sim`.
const (
	ExitOK          = 0
	ExitFailed      = 1 // an assertion failed, or an output could not be written
	ExitBadScenario = 2 // the scenario does not parse or cannot be built
)

// CLI is one `tapswitch sim` invocation; the cobra command fills it from
// flags and calls Run, and tests call Run directly.
type CLI struct {
	// File is a scenario file, or the name of a shipped scenario; empty
	// runs DefaultScenario.
	File        string
	Seed        uint64
	SeedSet     bool
	PcapDir     string
	PcapPerPort bool
	MetricsFile string
	JSON        bool // print the Result as JSON instead of trace and text
	Quiet       bool // no trace
	TraceLines  int  // cap on trace lines; 0: none
	MaxEvents   uint64
	// Plot writes a PNG of the run's time series (PlotRuns). With Also,
	// those scenarios run too, one after the other, and are drawn in
	// columns beside the first.
	Plot string
	Also []string
	// Sets are `--set KEY=VALUE` overrides in the scenario's key paths
	// (see Sweep), one value each, applied to every scenario run.
	Sets []string
}

// Run runs the scenario and returns the exit status with the error that
// explains it (nil with ExitOK).
func (c CLI) Run(stdout io.Writer) (int, error) {
	if len(c.Also) > 0 && c.Plot == "" {
		return ExitBadScenario, fmt.Errorf("several scenarios are run only to be plotted side by side: add --plot FILE.png")
	}
	if len(c.Also) > 0 && (c.MetricsFile != "" || c.PcapDir != "") {
		return ExitBadScenario, fmt.Errorf("--metrics and --pcap take one scenario")
	}
	var ms []*Metrics
	var titles []string
	code, err := ExitOK, error(nil)
	for _, f := range append([]string{c.File}, c.Also...) {
		one := c
		one.File = f
		res, m, ocode, oerr := one.runOne(stdout)
		if ocode == ExitBadScenario || (ocode != ExitOK && res == nil) {
			return ocode, oerr
		}
		if ocode != ExitOK && code == ExitOK {
			code, err = ocode, oerr
		}
		if m != nil {
			ms = append(ms, m)
			titles = append(titles, fmt.Sprintf("%s (seed %d)", res.Scenario, res.Seed))
		}
	}
	if c.Plot != "" {
		if perr := PlotRuns(ms, titles, c.Plot); perr != nil {
			return ExitFailed, perr
		}
	}
	return code, err
}

// runOne runs one scenario and prints its outputs; the Result is nil when
// it did not run.
func (c CLI) runOne(stdout io.Writer) (*Result, *Metrics, int, error) {
	name, data, err := c.load()
	if err != nil {
		return nil, nil, ExitBadScenario, err
	}
	sc, err := c.parse(name, data)
	if err != nil {
		return nil, nil, ExitBadScenario, err
	}
	opts := Options{Seed: c.Seed, SeedSet: c.SeedSet, MaxEvents: c.MaxEvents, TraceLimit: c.TraceLines, CollectMetrics: c.Plot != ""}
	if !c.JSON && !c.Quiet {
		opts.Trace = stdout
	}
	if c.PcapDir != "" {
		opts.Pcap, opts.PcapPerPort = PcapDir(c.PcapDir), c.PcapPerPort
	}
	var mf *os.File
	if c.MetricsFile != "" {
		if mf, err = os.Create(c.MetricsFile); err != nil {
			return nil, nil, ExitFailed, fmt.Errorf("metrics: %w", err)
		}
		defer mf.Close()
		opts.Metrics = mf
	}
	s, err := New(sc, opts)
	if err != nil {
		var se *Error
		if errors.As(err, &se) {
			return nil, nil, ExitBadScenario, err
		}
		return nil, nil, ExitFailed, err
	}
	res, err := s.Run()
	if err != nil {
		return nil, nil, ExitFailed, err
	}
	if mf != nil {
		if err := mf.Close(); err != nil {
			return nil, nil, ExitFailed, fmt.Errorf("metrics: %w", err)
		}
	}
	if c.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(res)
	} else {
		err = res.WriteText(stdout)
	}
	if err != nil {
		return res, nil, ExitFailed, err
	}
	m := s.Metrics()
	if !res.Passed {
		return res, m, ExitFailed, fmt.Errorf("%s: %d of %d assertions failed", res.Scenario, res.Failed, len(res.Assertions))
	}
	return res, m, ExitOK, nil
}

// parse parses the scenario with the --set overrides applied.
func (c CLI) parse(name string, data []byte) (*Scenario, error) {
	if len(c.Sets) == 0 {
		return Parse(name, data)
	}
	var params []Param
	for _, s := range c.Sets {
		p, err := ParseSet(s)
		if err != nil {
			return nil, err
		}
		if len(p.Values) != 1 {
			return nil, fmt.Errorf("--set %s: one value on a single run (several are for sim sweep)", p.Key)
		}
		params = append(params, p)
	}
	sw, err := NewSweep(name, data, params, nil)
	if err != nil {
		return nil, err
	}
	return parseNode(name, sw.Points[0].root)
}

// load reads the scenario: a file if one exists by that name, else a
// shipped scenario.
func (c CLI) load() (string, []byte, error) {
	if c.File == "" {
		b, err := ShippedSource(DefaultScenario)
		return DefaultScenario + ".yaml", b, err
	}
	b, err := os.ReadFile(c.File)
	if err == nil {
		return c.File, b, nil
	}
	if errors.Is(err, os.ErrNotExist) && !strings.ContainsAny(c.File, `/\.`) {
		if sb, serr := ShippedSource(c.File); serr == nil {
			return c.File + ".yaml", sb, nil
		}
		return "", nil, fmt.Errorf("scenario %q: no such file, and no shipped scenario of that name (have %s)", c.File, strings.Join(Shipped(), ", "))
	}
	return "", nil, fmt.Errorf("scenario: %w", err)
}

// Load reads the scenario the CLI names (a file, a shipped scenario, or
// the default), for a run on another dataplane: its file name and bytes.
func (c CLI) Load() (string, []byte, error) { return c.load() }

// Parse parses the scenario with the CLI's --set overrides applied.
func (c CLI) Parse(name string, data []byte) (*Scenario, error) { return c.parse(name, data) }
