//go:build !nolab

package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tapswitch/tapswitch/cmd/internal/demo"
	"github.com/tapswitch/tapswitch/cmd/internal/logging"
)

func newDemoCmd() *cobra.Command {
	var (
		o     demo.Options
		sizeM int64
		level string
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "As root: start a switch, connect three pods, ping, transfer, explain, clean up",
		Long: `Start a switch in this process, create three pods (network namespaces
with a TAP as eth0), ping pod1 -> pod2, pod2 -> pod3 and pod1 -> gateway, run
a TCP transfer pod1 -> pod2 and print its rate, print the FDB, the neighbour
table and the port counters, explain which frames flooded and what the switch
learned, and remove everything it created, also on failure or Ctrl-C.
It exits non-zero if any step fails. Nothing on the host is changed beyond
the demo's own namespaces and gateway TAP (no sysctl, no firewall).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := logging.Console(level)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			context.AfterFunc(ctx, func() {
				// A second Ctrl-C during cleanup kills the process as usual.
				stop()
			})
			o.Out, o.Log, o.Size = cmd.OutOrStdout(), log, sizeM<<20
			return demo.Run(ctx, o)
		},
	}
	cmd.Flags().StringVar(&o.Subnet, "subnet", demo.DefaultSubnet, "pod subnet for the demo (the gateway takes its first address)")
	cmd.Flags().StringVar(&o.Prefix, "prefix", "tsdemo", "prefix of the demo's namespaces and gateway TAP")
	cmd.Flags().Int64Var(&sizeM, "size", 256, "MiB to send in the TCP transfer")
	cmd.Flags().IntVar(&o.Queues, "queues", 2, "TAP queues per pod")
	cmd.Flags().StringVar(&level, "log-level", "warn", "the in-process daemon's log level")
	return cmd
}
