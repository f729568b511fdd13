//go:build !nolab

package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/tapswitch/tapswitch/sim"
)

func newSimSweepCmd() *cobra.Command {
	var (
		c      sim.SweepCLI
		output string
	)
	cmd := &cobra.Command{
		Use:   "sweep FILE|NAME",
		Short: "Run a scenario over a grid of parameter values and seeds, in parallel",
		Long: `Run a scenario for every combination of the --set values, each with every
seed of --seeds, on -j workers. Every run is deterministic: the same
scenario, values and seed give the same metrics whatever -j is. Writes every
run's metrics (--csv, --json), prints a summary per grid point (mean, 95%
interval, min, max) and can plot a metric against a parameter (--plot).

--set keys are the scenario's own YAML paths, list items by name or index:
switches.cbr0.table_limit, switches.cbr0.ports.pod1.storm, links.NAME.loss,
timeline.3.mac_flood.rate, run.duration. Short forms: table_limit (every
switch), cbr0.table_limit (a switch, host or link by name), and the daemon's
fdb.limit, fdb.policy, fdb.port_limit, fdb.ageing.

Exit status: 0 when every run passed its assertions, 1 when one did not,
2 for a bad scenario, key, value or flag (nothing has run then).`,
		Example: `  tapswitch sim sweep mac-flood-fair --set fdb.limit=64,256,1024 --set fdb.policy=stop-learning,evict-fair \
      --seeds 1-20 --csv runs.csv --plot flood.png --plot-metric switches.cbr0.fdb.refused`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch output {
			case "text":
			case "json":
				c.JSON = true
			default:
				return &exitError{code: sim.ExitBadScenario, err: fmt.Errorf("-o %q: want text or json", output)}
			}
			c.File = args[0]
			c.Stderr = cmd.ErrOrStderr()
			if f, ok := c.Stderr.(*os.File); ok {
				if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
					c.StderrTTY = true
				}
			}
			code, err := c.Run(cmd.OutOrStdout())
			if code != sim.ExitOK {
				return &exitError{code: code, err: err}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&c.Sets, "set", nil, "`KEY=V1,V2,...`: a swept parameter (repeatable; the grid is every combination)")
	f.StringVar(&c.Seeds, "seeds", "", "seeds of each grid point: `LIST` such as 1-50 or 1,4,9-12 (default: the scenario's)")
	f.IntVarP(&c.Workers, "jobs", "j", 0, "runs at once (default: one per CPU)")
	f.StringVar(&c.CSVFile, "csv", "", "write every run's metrics to `FILE` (CSV)")
	f.StringVar(&c.JSONFile, "json", "", "write every run's metrics and the summary to `FILE` (JSON)")
	f.StringVar(&c.Plot, "plot", "", "plot --plot-metric against a swept parameter into `FILE.png`")
	f.StringVar(&c.PlotMetric, "plot-metric", "", "the metric (`NAME`, a CSV column) to plot")
	f.StringVar(&c.PlotX, "plot-x", "", "the --set `KEY` on the x axis (default: the first)")
	f.StringArrayVar(&c.Show, "metric", nil, "a metric (`NAME`) to summarise on standard output (repeatable; default: the plotted one, or deliveries)")
	f.BoolVarP(&c.Quiet, "quiet", "q", false, "no progress on standard error")
	f.StringVarP(&output, "output", "o", "text", "summary format: text or json")
	return cmd
}
