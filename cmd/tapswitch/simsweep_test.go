//go:build !nolab

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSimSweepCommand: the flags of `sim sweep` and `sim --plot` reach the
// simulator, progress on a pipe is one final line, and bad input is exit 2.
func TestSimSweepCommand(t *testing.T) {
	bin := buildCLI(t)
	dir := t.TempDir()
	csvPath, png := filepath.Join(dir, "runs.csv"), filepath.Join(dir, "sweep.png")
	r := cli(t, bin, "sim", "sweep", "mac-flood-fair", "--set", "fdb.limit=64", "--set", "links.pod1--cbr0.loss=0,1%",
		"--seeds", "1-3", "-j", "2", "--csv", csvPath, "--plot", png, "--plot-metric", "links.pod1--cbr0.lost", "--plot-x", "links.pod1--cbr0.loss")
	if r.code != 1 || !strings.Contains(r.stdout, "fdb.limit=64 links.pod1--cbr0.loss=0: 3/3 passed") ||
		strings.Count(r.stderr, "\n") != 2 || !strings.HasPrefix(r.stderr, "sweep: 6 runs in ") {
		t.Errorf("sweep: %+v", r)
	}
	b, err := os.ReadFile(csvPath)
	if err != nil || strings.Count(string(b), "\n") != 7 {
		t.Errorf("CSV: %v\n%s", err, b)
	}
	if st, err := os.Stat(png); err != nil || st.Size() < 2000 {
		t.Errorf("plot: %v", err)
	}
	if r := cli(t, bin, "sim", "sweep", "node", "--set", "tabel_limit=4"); r.code != 2 || !strings.Contains(r.stderr, "--set tabel_limit: unknown key") {
		t.Errorf("unknown key: %+v", r)
	}
	if r := cli(t, bin, "sim", "sweep", "node", "-q", "--seeds", "1-2"); r.code != 0 || r.stderr != "" {
		t.Errorf("-q: %+v", r)
	}
	if r := cli(t, bin, "sim", "node", "ageing"); r.code != 2 || !strings.Contains(r.stderr, "--plot") {
		t.Errorf("two scenarios without --plot: %+v", r)
	}
	runPNG := filepath.Join(dir, "run.png")
	if r := cli(t, bin, "sim", "-q", "--set", "run.tick=500ms", "--plot", runPNG, "mac-flood-stop", "mac-flood-fair"); r.code != 0 {
		t.Errorf("--plot of two scenarios: %+v", r)
	}
	if st, err := os.Stat(runPNG); err != nil || st.Size() < 10000 {
		t.Errorf("run plot: %v", err)
	}
}
