package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tapswitch/tapswitch/cmd/internal/monitor"
)

// monitor: the daemon's live FDB and port events, like `bridge monitor`.
func newMonitorCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "monitor",
		Short: "Print FDB and port events as they happen, like `bridge monitor` (-o json: one JSON object a line)",
		Long: `Prints one line per event until interrupted:
  learned MAC vlan N port NAME      a MAC learned
  moved MAC vlan N port NAME from OLD [flapping]
  aged MAC vlan N port NAME         forgotten after fdb.ageing
  flushed MAC vlan N port NAME      removed with its port or by a flush
  port NAME added|removed|gone: REASON
  dropped N events                  this monitor (or the daemon's feed) fell behind`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			out := cmd.OutOrStdout()
			enc := json.NewEncoder(out)
			return cf.client().Events(ctx, func(e monitor.Event) error {
				if cf.json() {
					return enc.Encode(e)
				}
				_, err := fmt.Fprintln(out, e.String())
				return err
			})
		},
	}
	cf.add(cmd, true)
	return cmd
}
