package main

import (
	"context"
	"io"

	"github.com/spf13/cobra"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/cmd/internal/render"
)

// The read-only listings: ports, fdb, arp, stats.
func newListingCmds() []*cobra.Command {
	return []*cobra.Command{
		listing("ports", "List the switch's ports with their counters (gone pods included)", (*api.Client).Ports, table(render.Ports)),
		// The table's "master" column needs the switch's name: one more
		// call, which -o json does not make.
		listing("fdb", "Show the forwarding table, like `bridge fdb show`", (*api.Client).FDB, func(cmd *cobra.Command, c *api.Client, ents []api.FDBEntry) error {
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			return render.FDB(cmd.OutOrStdout(), st.Switch, ents)
		}),
		listing("arp", "Show the neighbour table the switch snooped from ARP", (*api.Client).Neighbours, table(render.Neighbours)),
		listing("stats", "Show switch-wide counters: FDB, ARP, traffic and drops", (*api.Client).Stats, table(render.Stats)),
	}
}

// listing is a top-level read-only command with its own client flags.
func listing[T any](use, short string, fetch func(*api.Client, context.Context) (T, error), text func(*cobra.Command, *api.Client, T) error) *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs, RunE: showListing(&cf, fetch, text)}
	cf.add(cmd, true)
	return cmd
}

// showListing is the RunE of every read-only listing (these and `pod
// list`): fetch, then print as indented JSON or with text (-o was checked
// before, by the flags' PersistentPreRunE).
func showListing[T any](cf *clientFlags, fetch func(*api.Client, context.Context) (T, error), text func(*cobra.Command, *api.Client, T) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c := cf.client()
		v, err := fetch(c, cmd.Context())
		if err != nil {
			return err
		}
		if cf.json() {
			return writeJSON(cmd.OutOrStdout(), v)
		}
		return text(cmd, c, v)
	}
}

// table adapts a render function, which needs nothing but the value, to
// showListing's text.
func table[T any](r func(io.Writer, T) error) func(*cobra.Command, *api.Client, T) error {
	return func(cmd *cobra.Command, _ *api.Client, v T) error { return r(cmd.OutOrStdout(), v) }
}
