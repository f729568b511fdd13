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
}

// Run runs the scenario and returns the exit status with the error that
// explains it (nil with ExitOK).
func (c CLI) Run(stdout io.Writer) (int, error) {
	name, data, err := c.load()
	if err != nil {
		return ExitBadScenario, err
	}
	sc, err := Parse(name, data)
	if err != nil {
		return ExitBadScenario, err
	}
	opts := Options{Seed: c.Seed, SeedSet: c.SeedSet, MaxEvents: c.MaxEvents, TraceLimit: c.TraceLines}
	if !c.JSON && !c.Quiet {
		opts.Trace = stdout
	}
	if c.PcapDir != "" {
		opts.Pcap, opts.PcapPerPort = PcapDir(c.PcapDir), c.PcapPerPort
	}
	var mf *os.File
	if c.MetricsFile != "" {
		if mf, err = os.Create(c.MetricsFile); err != nil {
			return ExitFailed, fmt.Errorf("metrics: %w", err)
		}
		defer mf.Close()
		opts.Metrics = mf
	}
	s, err := New(sc, opts)
	if err != nil {
		var se *Error
		if errors.As(err, &se) {
			return ExitBadScenario, err
		}
		return ExitFailed, err
	}
	res, err := s.Run()
	if err != nil {
		return ExitFailed, err
	}
	if mf != nil {
		if err := mf.Close(); err != nil {
			return ExitFailed, fmt.Errorf("metrics: %w", err)
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
		return ExitFailed, err
	}
	if !res.Passed {
		return ExitFailed, fmt.Errorf("%s: %d of %d assertions failed", res.Scenario, res.Failed, len(res.Assertions))
	}
	return ExitOK, nil
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
