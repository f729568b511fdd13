package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tapswitch/tapswitch/cmd/internal/config"
	"github.com/tapswitch/tapswitch/cmd/internal/daemon"
	"github.com/tapswitch/tapswitch/cmd/internal/logging"
)

func newRunCmds() []*cobra.Command {
	var (
		path, level, socket string
		removePods          bool
	)
	run := &cobra.Command{
		Use:   "run [--config FILE]",
		Short: "Run the switch daemon in the foreground (JSON logs on stderr)",
		Long: `Run the switch daemon in the foreground until SIGTERM or SIGINT.
SIGHUP re-reads the configuration: FDB and ARP settings, storm_pps (for pods
added after it), remove_pods_on_exit and log_level change in place; a file
that does not validate, or that changes a key only a restart applies, is
refused with a logged reason and the running configuration stays.

Without --config the built-in default is used (see ` + "`tapswitch config default`" + `).
Before it changes anything it refuses to start when another daemon answers
on the socket, holds the state_dir, holds or marked the gateway TAP, or
marked the nftables table. On start it finishes or undoes a pod add or
delete a crash interrupted, re-attaches the TAPs of the pods it had (state
under state_dir), and adopts the pods its marks show that the state file
lacks, so a restart, even after kill -9 or with the state file lost, does
not reconfigure pods (docs/operations.md). On SIGTERM/SIGINT
it stops forwarding and closes its file descriptors; pods stay unless
--remove-pods (or remove_pods_on_exit) asks for them to be deleted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// load reads the file with the command line's overrides; a
			// SIGHUP runs it again.
			load := func() (config.Config, error) {
				cfg, err := config.Load(path)
				if err != nil {
					return cfg, err
				}
				if cmd.Flags().Changed("log-level") {
					cfg.LogLevel = level
				}
				if cmd.Flags().Changed("socket") {
					cfg.Socket = socket
				}
				if removePods {
					cfg.RemovePodsOnExit = true
				}
				return cfg, cfg.Validate()
			}
			cfg, err := load()
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			log, lvl, err := logging.JSONLevel(cfg.LogLevel)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			defer log.Sync()
			if err := daemon.Serve(cfg, load, log, &lvl); err != nil {
				if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EPERM) {
					return fmt.Errorf("%w (tapswitch run needs root, or CAP_NET_ADMIN and CAP_SYS_ADMIN)", err)
				}
				return err
			}
			return nil
		},
	}
	run.Flags().StringVarP(&path, "config", "c", "", "YAML configuration file, read over the built-in default")
	run.Flags().StringVar(&level, "log-level", "info", "log level: debug, info, warn or error (overrides the config)")
	run.Flags().StringVar(&socket, "socket", "", "control socket path (overrides the config)")
	run.Flags().BoolVar(&removePods, "remove-pods", false, "on exit delete the pods, the gateway TAP and the state file")

	cfgCmd := &cobra.Command{
		Use:   "config",
		Short: "Print configurations",
	}
	def := &cobra.Command{
		Use:   "default",
		Short: "Print the built-in default configuration (commented YAML)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := cmd.OutOrStdout().Write(config.DefaultYAML())
			return err
		},
	}
	check := &cobra.Command{
		Use:   "check FILE",
		Short: "Check a configuration file and print it as the daemon would use it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.Load(args[0])
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			b, err := cfg.Marshal()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	cfgCmd.AddCommand(def, check)
	return []*cobra.Command{run, cfgCmd}
}
