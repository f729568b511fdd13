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

// TestLoadSingleStackFile: a file as tapswitch wrote it before dual-stack
// pods (one "ip" per pod, no "ips", no IPv6 keys) loads, and Addrs gives
// the pod's one address; a dual-stack pod round-trips with both.
func TestLoadSingleStackFile(t *testing.T) {
	s, _ := Open(t.TempDir())
	defer s.Close()
	old := `{
  "version": 1,
  "switch": "tapswitch",
  "subnet": "10.244.0.0/24",
  "gateway": {"interface": "tsw0", "address": "10.244.0.1/24", "mac": "02:00:0a:f4:00:01"},
  "pods": [
    {"name": "web-1", "netns": "web-1", "netns_created": true, "ifname": "eth0", "ip": "10.244.0.10/24",
     "mac": "02:00:0a:f4:00:0a", "vlan": 1, "queues": 2, "created": "2026-12-01T10:00:00Z"}
  ],
  "updated": "2026-12-01T10:00:00Z"
}
`
	if err := os.WriteFile(s.Path(), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Pods) != 1 || st.SubnetV6 != "" || st.Gateway.AddressV6 != "" {
		t.Fatalf("loaded %+v", st)
	}
	if a := st.Pods[0].Addrs(); len(a) != 1 || a[0] != "10.244.0.10/24" {
		t.Fatalf("addresses of an old pod: %v", a)
	}
	st.Pods = append(st.Pods, Pod{Name: "web-2", IP: "10.244.0.11/24", IPs: []string{"10.244.0.11/24", "fd00::b/64"}})
	if err := s.Save(st); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if a := got.Pods[1].Addrs(); len(a) != 2 || a[1] != "fd00::b/64" || got.Pods[1].IP != "10.244.0.11/24" {
		t.Fatalf("dual-stack pod after a round trip: %+v", got.Pods[1])
	}
}

func TestInstancePersists(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir)
	id, err := s.Instance()
	if err != nil || !ValidInstance(id) {
		t.Fatalf("first instance: %q %v", id, err)
	}
	s.Close()
	s, _ = Open(dir)
	defer s.Close()
	if again, err := s.Instance(); err != nil || again != id {
		t.Fatalf("after reopening: %q %v, want %q", again, err, id)
	}
	os.WriteFile(filepath.Join(dir, InstanceName), []byte("not-an-id\n"), 0o600)
	if _, err := s.Instance(); err == nil || !strings.Contains(err.Error(), "not an instance ID") {
		t.Fatalf("garbage instance file: %v", err)
	}
}

func TestIntentsRoundTrip(t *testing.T) {
	s, _ := Open(t.TempDir())
	defer s.Close()
	if err := s.Begin(Intent{Op: IntentAdd, Pod: Pod{Name: "b", Netns: "b"}, NetnsExisted: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.Begin(Intent{Op: IntentDel, Pod: Pod{Name: "a", Netns: "a", NetnsCreated: true}}); err != nil {
		t.Fatal(err)
	}
	ins, err := s.Intents()
	if err != nil || len(ins) != 2 || ins[0].Pod.Name != "a" || ins[0].Op != IntentDel || !ins[1].NetnsExisted {
		t.Fatalf("intents: %+v %v", ins, err)
	}
	if err := s.Done("a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Done("a"); err != nil {
		t.Fatalf("done twice: %v", err)
	}
	if ins, _ := s.Intents(); len(ins) != 1 || ins[0].Pod.Name != "b" {
		t.Fatalf("after done: %+v", ins)
	}
	os.WriteFile(filepath.Join(filepath.Dir(s.Path()), "intent-c.json"), []byte(`{"op":"`), 0o600)
	if _, err := s.Intents(); err == nil || !strings.Contains(err.Error(), "intent-c.json") {
		t.Fatalf("a truncated intent: %v", err)
	}
}
