// Command tapswitch is the node-local userspace switch: the daemon (run),
// its CLI (pod, ports, fdb, arp, stats, ...), and, in the full build, the
// lab: the demo, the simulator (sim) and the benchmark (bench).
//
// The node build (go build -tags nolab) leaves the lab out, and with it the
// simulator, the plotting library and the benchmark's topologies: it is what
// the node image ships. Each subcommand is constructed by a function in its
// own file; the root is assembled here from the node commands and, in the
// full build, the lab commands (lab.go).
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// newRootCmd assembles the command tree: the node commands, then those of
// the lab when this build has it.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "tapswitch",
		Short:         "A userspace L2 switch for Kubernetes nodes" + labShort,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(nodeCmds()...)
	root.AddCommand(labCmds()...)
	return root
}

// nodeCmds are the commands a node needs: the daemon, its control CLI and
// the DaemonSet's install step. None of them imports the lab.
func nodeCmds() []*cobra.Command {
	cmds := newRunCmds()
	cmds = append(cmds, newPodCmd())
	cmds = append(cmds, newListingCmds()...)
	return append(cmds, newMonitorCmd(), newCaptureCmd(), newInstallCNICmd())
}

// exitError carries a specific exit status (sim: 1 for a failed assertion,
// 2 for a bad scenario) through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	err := newRootCmd().Execute()
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "tapswitch:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		os.Exit(ee.code)
	}
	os.Exit(1)
}
