package main

import (
	"github.com/spf13/cobra"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/cmd/internal/render"
)

// The read-only listings: ports, fdb, arp, stats.
func init() {
	listing := func(use, short string, show func(cmd *cobra.Command, c *api.Client, asJSON bool) error) *cobra.Command {
		var cf clientFlags
		cmd := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				if err := cf.checkOutput(); err != nil {
					return err
				}
				return show(cmd, cf.client(), cf.json())
			},
		}
		cf.add(cmd, true)
		return cmd
	}
	rootCmd.AddCommand(
		listing("ports", "List the switch's ports with their counters (gone pods included)", func(cmd *cobra.Command, c *api.Client, asJSON bool) error {
			ports, err := c.Ports(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), ports)
			}
			return render.Ports(cmd.OutOrStdout(), ports)
		}),
		listing("fdb", "Show the forwarding table, like `bridge fdb show`", func(cmd *cobra.Command, c *api.Client, asJSON bool) error {
			ents, err := c.FDB(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), ents)
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			return render.FDB(cmd.OutOrStdout(), st.Switch, ents)
		}),
		listing("arp", "Show the neighbour table the switch snooped from ARP", func(cmd *cobra.Command, c *api.Client, asJSON bool) error {
			ns, err := c.Neighbours(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), ns)
			}
			return render.Neighbours(cmd.OutOrStdout(), ns)
		}),
		listing("stats", "Show switch-wide counters: FDB, ARP, traffic and drops", func(cmd *cobra.Command, c *api.Client, asJSON bool) error {
			st, err := c.Stats(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), st)
			}
			return render.Stats(cmd.OutOrStdout(), st)
		}),
	)
}
