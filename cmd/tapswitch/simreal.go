//go:build !nolab

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/tapswitch/tapswitch/cmd/internal/simreal"
	"github.com/tapswitch/tapswitch/sim"
)

// runSimReal is `tapswitch sim --real` and `--compare`: the scenario on the
// real dataplane, alone or beside the simulator. Ctrl-C, SIGTERM, SIGHUP
// and a closed output pipe (`| head`; SIGPIPE would otherwise kill the
// process) stop the run, which still removes everything it made.
func runSimReal(c sim.CLI, compare bool, scale float64, w io.Writer) (int, error) {
	name, data, err := c.Load()
	if err != nil {
		return sim.ExitBadScenario, err
	}
	sc, err := c.Parse(name, data)
	if err != nil {
		return sim.ExitBadScenario, err
	}
	if sc, err = simreal.Scale(sc, scale); err != nil {
		return sim.ExitBadScenario, err
	}
	if err := simreal.Check(sc); err != nil {
		return sim.ExitBadScenario, err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	defer stop()
	o := simreal.Options{Pcap: c.PcapDir}
	if !c.JSON && !c.Quiet && !compare {
		o.Trace = w
	}
	if compare {
		cmp, err := simreal.RunCompare(ctx, sc, o)
		if err != nil {
			return exitOf(err), interrupted(ctx, err)
		}
		if c.JSON {
			err = cmp.WriteJSON(w)
		} else {
			err = cmp.WriteText(w)
		}
		if err != nil {
			return sim.ExitFailed, err
		}
		if !cmp.Agree {
			return sim.ExitFailed, fmt.Errorf("%s: the simulator and the real node disagree on %d rows", cmp.Scenario, cmp.Disagreed)
		}
		return sim.ExitOK, nil
	}
	out, err := simreal.Run(ctx, sc, o)
	if err != nil {
		return exitOf(err), interrupted(ctx, err)
	}
	res := out.Result
	if c.MetricsFile != "" {
		if err := writeMetricsFile(c.MetricsFile, out.Metrics); err != nil {
			return sim.ExitFailed, err
		}
	}
	if c.Plot != "" {
		if err := sim.PlotRuns([]*sim.Metrics{out.Metrics}, []string{res.Scenario + " (real node)"}, c.Plot); err != nil {
			return sim.ExitFailed, err
		}
	}
	if c.JSON {
		err = writeJSON(w, res)
	} else {
		err = res.WriteText(w)
	}
	if err != nil {
		return sim.ExitFailed, err
	}
	if !res.Passed {
		return sim.ExitFailed, fmt.Errorf("%s: %d of %d assertions failed on the real node", res.Scenario, res.Failed, len(res.Assertions))
	}
	return sim.ExitOK, nil
}

func writeMetricsFile(name string, m *sim.Metrics) error {
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	enc := json.NewEncoder(f)
	enc.SetIndent("", " ")
	if err := enc.Encode(m); err != nil {
		f.Close()
		return fmt.Errorf("metrics: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// interrupted says what a signal did, rather than "context canceled".
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: the run stopped and removed what it made (%v)", err)
	}
	return err
}

func exitOf(err error) int {
	if simreal.IsRefusal(err) {
		return sim.ExitBadScenario
	}
	return sim.ExitFailed
}
