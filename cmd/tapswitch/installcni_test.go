package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestInstallCNI(t *testing.T) {
	src, bin, conf := t.TempDir(), t.TempDir(), t.TempDir()
	for _, n := range []string{"tapswitch", "host-local", "loopback", "portmap"} {
		if err := os.WriteFile(filepath.Join(src, n), []byte("#!plugin "+n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cl := filepath.Join(t.TempDir(), "10-tapswitch.conflist")
	if err := os.WriteFile(cl, []byte(`{"cniVersion":"1.0.0","name":"tapswitch","plugins":[{"type":"tapswitch"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	// An older plugin in place, and a file that is not ours.
	old := filepath.Join(bin, "tapswitch")
	if err := os.WriteFile(old, []byte("old"), 0o755); err != nil {
		t.Fatal(err)
	}
	var before syscall.Stat_t
	syscall.Stat(old, &before)
	if err := os.WriteFile(filepath.Join(bin, "bridge"), []byte("other"), 0o755); err != nil {
		t.Fatal(err)
	}

	got, err := installCNI(src, cl, bin, conf)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"host-local", "loopback", "portmap", "tapswitch"}
	for i, n := range want {
		want[i] = filepath.Join(bin, n)
	}
	want = append(want, filepath.Join(conf, "10-tapswitch.conflist"))
	if !slices.Equal(got, want) {
		t.Errorf("installed %v, want %v", got, want)
	}
	for _, p := range want {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		wantMode := os.FileMode(0o755)
		if strings.HasSuffix(p, ".conflist") {
			wantMode = 0o644
		}
		if st.Mode().Perm() != wantMode {
			t.Errorf("%s: mode %v, want %v", p, st.Mode().Perm(), wantMode)
		}
	}
	if b, _ := os.ReadFile(old); string(b) != "#!plugin tapswitch" {
		t.Errorf("tapswitch: %q, want the new plugin", b)
	}
	// Replaced by a rename, not rewritten in place: a runtime running the
	// old binary keeps its inode.
	var after syscall.Stat_t
	syscall.Stat(old, &after)
	if after.Ino == before.Ino {
		t.Error("tapswitch was overwritten in place, not renamed over")
	}
	if b, _ := os.ReadFile(filepath.Join(bin, "bridge")); string(b) != "other" {
		t.Error("a plugin not ours was touched")
	}
	for _, d := range []string{bin, conf} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") {
				t.Errorf("%s: temporary file %s left", d, e.Name())
			}
		}
	}
}

func TestInstallCNIRefusesABadConflist(t *testing.T) {
	src, bin, conf := t.TempDir(), t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(src, "tapswitch"), []byte("p"), 0o755)
	for _, body := range []string{`{"name":"x","plugins":[`, `{"name":"x","plugins":[]}`} {
		cl := filepath.Join(t.TempDir(), "bad.conflist")
		os.WriteFile(cl, []byte(body), 0o644)
		_, err := installCNI(src, cl, bin, conf)
		if err == nil || !strings.Contains(err.Error(), cl) {
			t.Errorf("%s: error %v, want one naming %s", body, err, cl)
		}
		for _, d := range []string{bin, conf} {
			if ents, _ := os.ReadDir(d); len(ents) != 0 {
				t.Errorf("%s: %d files installed after a refused conflist", d, len(ents))
			}
		}
	}
	if _, err := installCNI(t.TempDir(), "/nonexistent/10.conflist", bin, conf); err == nil || !strings.Contains(err.Error(), "/nonexistent/10.conflist") {
		t.Errorf("missing conflist: %v", err)
	}
}
