// Command tapswitch is the node-local userspace switch: the daemon (run),
// its CLI (pod, ports, fdb, arp, stats, ...), the demo, the simulator (sim)
// and the benchmark (bench). Each subcommand lives in its own file and adds
// itself to the root command in an init function.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

var rootCmd = &cobra.Command{
	Use:           "tapswitch",
	Short:         "A userspace L2 switch for Kubernetes nodes, with a simulator and benchmarks",
	SilenceUsage:  true,
	SilenceErrors: true,
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
	err := rootCmd.Execute()
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
