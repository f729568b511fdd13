package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/cmd/internal/render"
)

func newPodCmd() *cobra.Command {
	var cf clientFlags
	podCmd := &cobra.Command{
		Use:   "pod",
		Short: "Add, delete and list pods (a netns with a TAP eth0 on the switch)",
	}
	cf.add(podCmd, true)

	var spec api.PodSpec
	var ips []string
	add := &cobra.Command{
		Use:   "add NAME --ip CIDR [--ip CIDR6] [--mac MAC] [--vlan VID]",
		Short: "Create pod NAME: its netns if missing, a TAP eth0 with the IP(s), default routes via the gateway",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec.Name = args[0]
			if len(ips) == 0 {
				return &exitError{code: 2, err: fmt.Errorf("pod %q: --ip is required", spec.Name)}
			}
			// The API reads 0 as "the default, VLAN 1"; typed on the
			// command line it is out of the range the help gives.
			if cmd.Flags().Changed("vlan") && spec.VLAN == 0 {
				return &exitError{code: 2, err: fmt.Errorf("pod %q: --vlan 0: want 1-4094 (leave --vlan out for VLAN 1)", spec.Name)}
			}
			// The first goes in ip, which every daemon reads; the
			// daemon checks the families.
			spec.IP, spec.IPs = ips[0], ips[1:]
			p, err := cf.client().AddPod(cmd.Context(), spec)
			if err != nil {
				return err
			}
			if cf.json() {
				return writeJSON(cmd.OutOrStdout(), p)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pod %s: netns %s, %s %s mac %s vlan %d, port %d\n",
				p.Name, p.Netns, p.IfName, render.PodIPs(p), p.MAC, p.VLAN, p.Port)
			return nil
		},
	}
	add.Flags().StringSliceVar(&ips, "ip", nil, "the pod's address, CIDR in the pod subnet (e.g. 10.244.0.5/24); repeated or comma-separated, one of each family, for a dual-stack pod's IPv6 address in subnet_v6 (e.g. fd00:10:244::5/64)")
	add.Flags().StringVar(&spec.MAC, "mac", "", "the pod's MAC (default: 02:00 followed by the IP's four bytes)")
	add.Flags().Uint16Var(&spec.VLAN, "vlan", 0, "access VLAN of the pod's port, 1-4094 (default 1; only VLAN 1 reaches the gateway)")

	del := &cobra.Command{
		Use:     "del NAME",
		Aliases: []string{"delete", "rm"},
		Short:   "Delete pod NAME: its port, FDB entries, TAP and (if tapswitch made it) its netns",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cf.client().DeletePod(cmd.Context(), args[0]); err != nil {
				return err
			}
			if !cf.json() {
				fmt.Fprintf(cmd.OutOrStdout(), "pod %s deleted\n", args[0])
			}
			return nil
		},
	}

	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the pods",
		Args:    cobra.NoArgs,
		RunE:    showListing(&cf, (*api.Client).Pods, table(render.Pods)),
	}
	podCmd.AddCommand(add, del, list)
	return podCmd
}
