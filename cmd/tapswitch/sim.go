//go:build !nolab

package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tapswitch/tapswitch/sim"
)

func newSimCmd() *cobra.Command {
	var (
		c       sim.CLI
		output  string
		list    bool
		real    bool
		compare bool
		scale   float64
	)
	cmd := &cobra.Command{
		Use:   "sim [FILE|NAME]...",
		Short: "Run a packet-level simulation of switches, pods and links on a virtual clock",
		Long: `Run a scenario (YAML: topology, timeline, assertions) against the real
switching code on a virtual clock. Without arguments it runs the built-in
scenario "` + sim.DefaultScenario + `": one node, three pods and a gateway.
NAME runs a shipped scenario (see --list). No root needed. --plot draws
the run's time series; with several scenarios, side by side. "sim sweep"
runs a grid of parameters and seeds.

--real runs the scenario on the real dataplane instead (root: the daemon
in-process, a namespace and TAP per host, wall-clock time); --compare runs
both and prints them side by side. A scenario the real node cannot build
is refused with the key and line that ask for it.

Exit status: 0 when every assertion holds (--compare: the two runs agree),
1 when one fails (they disagree), 2 when the scenario is bad or cannot be
realised.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if list {
				for _, n := range sim.Shipped() {
					fmt.Fprintln(cmd.OutOrStdout(), n)
				}
				return nil
			}
			switch output {
			case "text":
			case "json":
				c.JSON = true
			default:
				return &exitError{code: sim.ExitBadScenario, err: fmt.Errorf("-o %q: want text or json", output)}
			}
			if len(args) > 1 && c.Plot == "" {
				return &exitError{code: sim.ExitBadScenario, err: fmt.Errorf("%d scenarios: several are run only to be plotted side by side (--plot FILE.png)", len(args))}
			}
			if len(args) > 0 {
				c.File, c.Also = args[0], args[1:]
			}
			c.SeedSet = cmd.Flags().Changed("seed")
			if cmd.Flags().Changed("time-scale") && !real && !compare {
				return &exitError{code: sim.ExitBadScenario, err: fmt.Errorf("--time-scale: only with --real or --compare (the simulator's time is virtual)")}
			}
			if real || compare {
				if real && compare {
					return &exitError{code: sim.ExitBadScenario, err: fmt.Errorf("--real and --compare: pick one (--compare runs both)")}
				}
				if len(c.Also) > 0 || c.PcapPerPort || c.SeedSet || c.MaxEvents > 0 {
					return &exitError{code: sim.ExitBadScenario, err: fmt.Errorf("--real and --compare take one scenario and no --pcap-per-port (the real run writes one pcap per port), --seed or --max-events")}
				}
				if compare && (c.Plot != "" || c.MetricsFile != "" || c.PcapDir != "") {
					return &exitError{code: sim.ExitBadScenario, err: fmt.Errorf("--compare prints the table only: run --real for --plot, --metrics and --pcap")}
				}
				code, err := runSimReal(c, compare, scale, cmd.OutOrStdout())
				if code != sim.ExitOK {
					return &exitError{code: code, err: err}
				}
				return nil
			}
			code, err := c.Run(cmd.OutOrStdout())
			if code != sim.ExitOK {
				return &exitError{code: code, err: err}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&c.Seed, "seed", 0, "seed for loss and MAC-flood addresses (default: the scenario's)")
	f.StringVar(&c.PcapDir, "pcap", "", "write a pcap file per link into `DIR`")
	f.BoolVar(&c.PcapPerPort, "pcap-per-port", false, "with --pcap, one file per switch port and host interface instead of per link")
	f.StringVar(&c.MetricsFile, "metrics", "", "write the metrics JSON to `FILE`")
	f.StringVarP(&output, "output", "o", "text", "summary format: "+strings.Join([]string{"text", "json"}, " or "))
	f.BoolVarP(&c.Quiet, "quiet", "q", false, "no trace, only the summary")
	f.IntVar(&c.TraceLines, "trace-lines", 5000, "cap on trace lines (0: no cap)")
	f.Uint64Var(&c.MaxEvents, "max-events", 0, "stop after this many events, if sooner than the scenario says")
	f.BoolVar(&list, "list", false, "list the shipped scenarios")
	f.StringVar(&c.Plot, "plot", "", "draw the run's time series (FDB and neighbour entries, frames and drops per port, link utilisation) into `FILE.png`")
	f.StringArrayVar(&c.Sets, "set", nil, "`KEY=VALUE`: override a scenario key (the paths of sim sweep --set; repeatable)")
	f.BoolVar(&real, "real", false, "run the scenario on the real dataplane (root): the daemon, a namespace and TAP per host, real traffic in wall-clock time")
	f.BoolVar(&compare, "compare", false, "run the scenario on the simulator and on the real dataplane (root) and print both side by side; exit 1 when they disagree")
	f.Float64Var(&scale, "time-scale", 1, "with --real or --compare: run time `F` times as fast (0 < F <= 1): times and ageing multiplied by F, rates divided by it, on both sides")
	cmd.AddCommand(newSimSweepCmd())
	return cmd
}
