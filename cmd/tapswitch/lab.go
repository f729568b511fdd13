//go:build !nolab

package main

import "github.com/spf13/cobra"

// labShort completes the root's one-line description in the full build.
const labShort = ", with a simulator and benchmarks"

// labCmds are the commands of the full CLI that a node does not need: the
// demo, the simulator and the benchmark. The node build (-tags nolab)
// leaves them, and the packages only they import, out.
func labCmds() []*cobra.Command {
	return []*cobra.Command{newDemoCmd(), newSimCmd(), newBenchCmd()}
}
