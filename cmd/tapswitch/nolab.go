//go:build nolab

package main

import "github.com/spf13/cobra"

// labShort: the node build has no simulator or benchmarks to mention.
const labShort = ""

// labCmds: the node build has no lab commands.
func labCmds() []*cobra.Command { return nil }
