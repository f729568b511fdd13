package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"
)

// The image's layout, which the DaemonSet's init container installs from.
const (
	imageCNIDir   = "/usr/local/lib/cni"
	imageConflist = "/etc/tapswitch/10-tapswitch.conflist"
)

func newInstallCNICmd() *cobra.Command {
	var from, conflist, binDir, confDir string
	cmd := &cobra.Command{
		Use:   "install-cni --cni-bin-dir DIR --cni-conf-dir DIR",
		Short: "Install the CNI plugins and the conflist onto a node (the DaemonSet's init step)",
		Long: `Copy every plugin binary in --from (tapswitch-cni as "tapswitch",
host-local, loopback, portmap in the image) into --cni-bin-dir and the
conflist into --cni-conf-dir. Each file is written under a hidden temporary
name, synced and renamed into place, so the runtime never runs a
half-written plugin or reads a half-written conflist; the conflist goes
last, once every plugin it names is there. A conflist that is not JSON is
refused before anything is copied. Nothing else in the directories is
touched. No shell is needed: the image has none.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if binDir == "" || confDir == "" {
				return &exitError{code: 2, err: errors.New("install-cni: --cni-bin-dir and --cni-conf-dir are required")}
			}
			installed, err := installCNI(from, conflist, binDir, confDir)
			for _, f := range installed {
				fmt.Fprintln(cmd.OutOrStdout(), "installed", f)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&from, "from", imageCNIDir, "directory of the plugin binaries to install")
	cmd.Flags().StringVar(&conflist, "conflist", imageConflist, "the network configuration list to install")
	cmd.Flags().StringVar(&binDir, "cni-bin-dir", "", "the runtime's CNI plugin directory (the host's /opt/cni/bin)")
	cmd.Flags().StringVar(&confDir, "cni-conf-dir", "", "the runtime's CNI config directory (the host's /etc/cni/net.d)")
	return cmd
}

// installCNI copies the plugins of from into binDir and conflist into
// confDir, each by copy-then-rename, and returns the paths it installed.
func installCNI(from, conflist, binDir, confDir string) ([]string, error) {
	conf, err := os.ReadFile(conflist)
	if err != nil {
		return nil, fmt.Errorf("conflist: %w", err)
	}
	var probe struct {
		Name    string            `json:"name"`
		Plugins []json.RawMessage `json:"plugins"`
	}
	if err := json.Unmarshal(conf, &probe); err != nil {
		return nil, fmt.Errorf("conflist %s: %w", conflist, err)
	}
	if probe.Name == "" || len(probe.Plugins) == 0 {
		return nil, fmt.Errorf("conflist %s: want a \"name\" and a non-empty \"plugins\" list", conflist)
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		return nil, fmt.Errorf("plugins: %w", err)
	}
	var names []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("plugins: no files in %s", from)
	}
	sort.Strings(names)
	var done []string
	for _, n := range names {
		dst := filepath.Join(binDir, n)
		if err := copyRename(filepath.Join(from, n), dst, 0o755); err != nil {
			return done, err
		}
		done = append(done, dst)
	}
	dst := filepath.Join(confDir, filepath.Base(conflist))
	if err := copyRename(conflist, dst, 0o644); err != nil {
		return done, err
	}
	return append(done, dst), nil
}

// copyRename writes src to dir/.NAME.tmp, syncs it and renames it to dst,
// so that a reader sees the old file or the whole new one. A failure
// removes the temporary file.
func copyRename(src, dst string, mode os.FileMode) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp")
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(tmp)
			err = fmt.Errorf("install %s: %w", dst, err)
		}
	}()
	if _, err = io.Copy(out, in); err != nil {
		return err
	}
	// O_CREATE's mode is filtered by the umask; the plugins must be
	// executable whatever it is.
	if err = out.Chmod(mode); err != nil {
		return err
	}
	if err = out.Sync(); err != nil {
		return err
	}
	if err = out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}
