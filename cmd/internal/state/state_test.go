package state

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "sub"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Load()
	if err != nil || len(st.Pods) != 0 {
		t.Fatalf("missing file: %v %+v", err, st)
	}
	st.Switch = "sw"
	st.Pods = []Pod{{Name: "b", IP: "10.0.0.3/24"}, {Name: "a", IP: "10.0.0.2/24", VLAN: 7}}
	if err := s.Save(st); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if got.Switch != "sw" || len(got.Pods) != 2 || got.Pods[0].Name != "a" || got.Pods[0].VLAN != 7 {
		t.Fatalf("round trip: %+v", got)
	}
	ents, _ := os.ReadDir(filepath.Dir(s.Path()))
	if len(ents) != 2 { // state.json and lock
		t.Fatalf("temporary files left behind: %v", ents)
	}
}

func TestOpenLocksTheDirectory(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "in use by another tapswitch daemon (pid ") {
		t.Fatalf("second open: %v", err)
	}
	s.Close()
	s2, err := Open(dir)
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	s2.Close()
}

func TestLoadRefusesNewerVersionAndGarbage(t *testing.T) {
	s, _ := Open(t.TempDir())
	os.WriteFile(s.Path(), []byte(`{"version": 99}`), 0o600)
	if _, err := s.Load(); err == nil {
		t.Fatal("newer version accepted")
	}
	os.WriteFile(s.Path(), []byte(`{"vers`), 0o600)
	if _, err := s.Load(); err == nil {
		t.Fatal("truncated file accepted")
	}
}
