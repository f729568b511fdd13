package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/tapswitch/tapswitch/cmd/internal/simreal"
	"github.com/tapswitch/tapswitch/sim"
)

// runSimReal is `tapswitch sim --real` and `--compare`: the scenario on the
// real dataplane, alone or beside the simulator. Ctrl-C stops the run and
// still removes everything it made.
func runSimReal(c sim.CLI, compare bool, w io.Writer) (int, error) {
	name, data, err := c.Load()
	if err != nil {
		return sim.ExitBadScenario, err
	}
	sc, err := c.Parse(name, data)
	if err != nil {
		return sim.ExitBadScenario, err
	}
	if err := simreal.Check(sc); err != nil {
		return sim.ExitBadScenario, err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o := simreal.Options{Pcap: c.PcapDir}
	if !c.JSON && !c.Quiet && !compare {
		o.Trace = w
	}
	if compare {
		cmp, err := simreal.RunCompare(ctx, sc, o)
		if err != nil {
			return exitOf(err), err
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
		return exitOf(err), err
	}
	res := out.Result
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

func exitOf(err error) int {
	if simreal.IsRefusal(err) {
		return sim.ExitBadScenario
	}
	return sim.ExitFailed
}
