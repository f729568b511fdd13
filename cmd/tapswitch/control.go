package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
)

// clientFlags are the flags every command that talks to the daemon takes.
type clientFlags struct {
	socket string
	output string
}

func (f *clientFlags) add(cmd *cobra.Command, listing bool) {
	def := os.Getenv("TAPSWITCH_SOCKET")
	if def == "" {
		def = api.DefaultSocket
	}
	cmd.PersistentFlags().StringVar(&f.socket, "socket", def, "the daemon's control socket (env TAPSWITCH_SOCKET)")
	if listing {
		cmd.PersistentFlags().StringVarP(&f.output, "output", "o", "table", "output format: table or json")
		// Every command under cmd takes -o, those that only act (pod del)
		// too: an unknown one is refused before the daemon is asked, or
		// told, anything.
		cmd.PersistentPreRunE = func(*cobra.Command, []string) error { return f.checkOutput() }
	}
}

func (f *clientFlags) client() *api.Client { return api.NewClient(f.socket) }

// checkOutput rejects an unknown -o before the daemon is asked anything.
func (f *clientFlags) checkOutput() error { return checkOutput(f.output) }

// checkOutput is the one check of an -o value, for every command that
// takes one.
func checkOutput(o string) error {
	switch o {
	case "table", "json", "":
		return nil
	}
	return &exitError{code: 2, err: fmt.Errorf("output %q: want table or json", o)}
}

func (f *clientFlags) json() bool { return f.output == "json" }

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
