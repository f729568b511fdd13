package sim

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/pcapgo"
)

func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCLIExitCodes: 0 when the assertions hold, 1 when one fails, 2 for a
// bad scenario.
func TestCLIExitCodes(t *testing.T) {
	failing := goodBase + "timeline:\n  - ping: {name: p, from: pod1, to: pod2}\nassert:\n  - delivered: {ping: p, equals: 2}\n"
	for _, tc := range []struct {
		name string
		cli  CLI
		code int
		want string
	}{
		{"default", CLI{}, ExitOK, "assertions: 23 passed, 0 failed"},
		{"shipped by name", CLI{File: "same-node", Quiet: true}, ExitOK, "same-node:"},
		{"failing assertion", CLI{File: writeFile(t, "f.yaml", failing), Quiet: true}, ExitFailed, "FAIL line 13: ping p delivered == 2 (got 1)"},
		{"unknown key", CLI{File: writeFile(t, "u.yaml", goodBase+"  - {a: pod1, b: cbr0, latncy: 1ms}\n")}, ExitBadScenario, ""},
		{"impossible topology", CLI{File: writeFile(t, "i.yaml", goodBase+"  - {a: pod9, b: cbr0}\n")}, ExitBadScenario, ""},
		{"no such file", CLI{File: "/nonexistent/x.yaml"}, ExitBadScenario, ""},
		{"no such scenario", CLI{File: "no-such-scenario"}, ExitBadScenario, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			code, err := tc.cli.Run(&out)
			if code != tc.code {
				t.Fatalf("exit %d (%v), want %d; output:\n%s", code, err, tc.code, out.String())
			}
			if (code == ExitOK) != (err == nil) {
				t.Errorf("exit %d with error %v", code, err)
			}
			if !strings.Contains(out.String(), tc.want) {
				t.Errorf("output lacks %q:\n%s", tc.want, out.String())
			}
		})
	}
}

func TestCLIErrorNamesLine(t *testing.T) {
	f := writeFile(t, "u.yaml", goodBase+"  - {a: pod1, b: cbr0, latncy: 1ms}\n")
	_, err := CLI{File: f}.Run(&bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), f+`:10: unknown key "latncy" in link`) {
		t.Errorf("error %v", err)
	}
}

// TestCLIOutputs: -o json, --pcap DIR and --metrics FILE.
func TestCLIOutputs(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	c := CLI{File: "cross-node", JSON: true, PcapDir: filepath.Join(dir, "pcap"), MetricsFile: filepath.Join(dir, "m.json"), Seed: 3, SeedSet: true}
	if code, err := c.Run(&out); code != ExitOK {
		t.Fatalf("exit %d: %v", code, err)
	}
	var res Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out.String())
	}
	if !res.Passed || res.Seed != 3 || len(res.Pings) != 3 {
		t.Errorf("result %+v", res)
	}
	var m Metrics
	b, err := os.ReadFile(filepath.Join(dir, "m.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Switches) != 3 || len(m.Switches[0].Series) < 5 {
		t.Errorf("metrics: %d switches, %d samples", len(m.Switches), len(m.Switches[0].Series))
	}
	ents, err := os.ReadDir(filepath.Join(dir, "pcap"))
	if err != nil || len(ents) != 9 {
		t.Fatalf("%d captures, %v", len(ents), err)
	}
	f, err := os.Open(filepath.Join(dir, "pcap", "wan.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		if _, _, err := r.ReadPacketData(); err != nil {
			break
		}
		n++
	}
	if n != 6 { // ARP request and reply, two echo requests and replies
		t.Errorf("wan.pcap has %d frames", n)
	}
}

// TestPcapPerPort: one file per switch port and per host interface.
func TestPcapPerPort(t *testing.T) {
	dir := t.TempDir()
	if code, err := (CLI{File: "node", Quiet: true, PcapDir: dir, PcapPerPort: true}).Run(&bytes.Buffer{}); code != ExitOK {
		t.Fatalf("exit %d: %v", code, err)
	}
	for _, name := range []string{"pod1.pcap", "gw.pcap", "cbr0_pod1.pcap", "cbr0_pod3b.pcap"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Size() <= 24 {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestUnreachedAssertions: an assertion the run never got to fails and
// says why.
func TestUnreachedAssertions(t *testing.T) {
	f := writeFile(t, "late.yaml", goodBase+"timeline:\n  - ping: {name: p, from: pod1, to: pod2}\nrun: {duration: 1s}\nassert:\n  - at: 5s\n    delivered: {ping: p, equals: 1}\n  - since: 3s\n    delivered: {ping: p, equals: 0}\n")
	var out bytes.Buffer
	code, _ := CLI{File: f, Quiet: true}.Run(&out)
	if code != ExitFailed || !strings.Contains(out.String(), "not judged: the run ended at 1s") || !strings.Contains(out.String(), "the run ended at 1s, before since") {
		t.Errorf("exit %d:\n%s", code, out.String())
	}
}
