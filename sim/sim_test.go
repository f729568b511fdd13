package sim

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// TestShippedScenarios runs every scenario in scenarios/ and holds it to
// its own assertions.
func TestShippedScenarios(t *testing.T) {
	names := Shipped()
	if len(names) < 10 {
		t.Fatalf("only %d shipped scenarios: %v", len(names), names)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			res := runShipped(t, name, Options{})
			if len(res.Assertions) == 0 {
				t.Fatal("a shipped scenario must assert something")
			}
			for _, a := range res.Assertions {
				if !a.Pass {
					t.Error(a)
				}
			}
		})
	}
}

// mustRun runs a scenario whose loading gave sc, err, failing the test on
// either error. runShipped and runYAML are the two ways tests load one.
func mustRun(t *testing.T, sc *Scenario, err error, opts Options) *Result {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(sc, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func runShipped(t *testing.T, name string, opts Options) *Result {
	t.Helper()
	sc, err := LoadShipped(name)
	return mustRun(t, sc, err, opts)
}

func runYAML(t *testing.T, file, yaml string, opts Options) *Result {
	t.Helper()
	sc, err := Parse(file, []byte(yaml))
	return mustRun(t, sc, err, opts)
}

func TestDefaultScenarioIsShipped(t *testing.T) {
	if _, err := LoadShipped(DefaultScenario); err != nil {
		t.Fatal(err)
	}
}

// memFiles collects captures in memory, by file name.
type memFiles map[string]*bytes.Buffer

type nopCloser struct{ *bytes.Buffer }

func (nopCloser) Close() error { return nil }

func (m memFiles) open(name string) (io.WriteCloser, error) {
	b := &bytes.Buffer{}
	m[name] = b
	return nopCloser{b}, nil
}

type runOutput struct {
	res     *Result
	pcaps   memFiles
	metrics []byte
	trace   string
}

func runWith(t *testing.T, file string, seed uint64, perPort bool) runOutput {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := Parse(file, data)
	if err != nil {
		t.Fatal(err)
	}
	out := runOutput{pcaps: memFiles{}}
	var metrics, trace bytes.Buffer
	opts := Options{Seed: seed, SeedSet: true, Pcap: out.pcaps.open, PcapPerPort: perPort, Metrics: &metrics, Trace: &trace}
	if out.res, err = Run(sc, opts); err != nil {
		t.Fatal(err)
	}
	out.metrics, out.trace = metrics.Bytes(), trace.String()
	return out
}

func samePcaps(a, b memFiles) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !bytes.Equal(v.Bytes(), w.Bytes()) {
			return false
		}
	}
	return true
}

// TestDeterminism: the same seed gives byte-identical captures, metrics and
// trace; another seed, with loss and random MACs in play, does not.
func TestDeterminism(t *testing.T) {
	for _, perPort := range []bool{false, true} {
		a := runWith(t, "testdata/lossy.yaml", 7, perPort)
		b := runWith(t, "testdata/lossy.yaml", 7, perPort)
		c := runWith(t, "testdata/lossy.yaml", 8, perPort)
		if len(a.pcaps) == 0 || len(a.metrics) == 0 {
			t.Fatal("no output")
		}
		if !samePcaps(a.pcaps, b.pcaps) {
			t.Errorf("per-port %v: same seed, different captures", perPort)
		}
		if !bytes.Equal(a.metrics, b.metrics) {
			t.Errorf("per-port %v: same seed, different metrics", perPort)
		}
		if a.trace != b.trace {
			t.Errorf("per-port %v: same seed, different traces", perPort)
		}
		if samePcaps(a.pcaps, c.pcaps) || bytes.Equal(a.metrics, c.metrics) {
			t.Errorf("per-port %v: seeds 7 and 8 gave identical output", perPort)
		}
		if a.res.Flows[0].Lost == c.res.Flows[0].Lost && a.res.Flows[0].Lost == 0 {
			t.Errorf("no loss at all: %+v", a.res.Flows[0])
		}
	}
}

// TestPcapReadable opens every capture with pcapgo and decodes every frame
// with gopacket: what tcpdump and Wireshark would do.
func TestPcapReadable(t *testing.T) {
	out := runWith(t, "scenarios/cross-node.yaml", 1, false)
	frames := 0
	for name, buf := range out.pcaps {
		r, err := pcapgo.NewReader(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r.LinkType() != layers.LinkTypeEthernet {
			t.Errorf("%s: link type %v", name, r.LinkType())
		}
		for {
			data, ci, err := r.ReadPacketData()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			frames++
			if ci.Timestamp.Before(Epoch) || ci.Timestamp.After(Epoch.Add(out.res.End)) {
				t.Errorf("%s: timestamp %v outside the run", name, ci.Timestamp)
			}
			p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
			if el := p.ErrorLayer(); el != nil {
				t.Errorf("%s: %v", name, el.Error())
			}
			if ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
				hdr := append([]byte(nil), data[ethLen:ethLen+ipLen]...)
				if checksum(hdr, 0) != 0 {
					t.Errorf("%s: bad IPv4 checksum %v > %v", name, ip.SrcIP, ip.DstIP)
				}
				if ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok {
					body := data[ethLen+ipLen : ethLen+int(ip.Length)]
					if checksum(body, 0) != 0 {
						t.Errorf("%s: bad ICMP checksum, type %v", name, ic.TypeCode)
					}
				}
			}
		}
	}
	if frames < 50 {
		t.Errorf("only %d frames captured", frames)
	}
}

// TestTraceFormat pins the trace lines the issue asks for.
func TestTraceFormat(t *testing.T) {
	var trace bytes.Buffer
	runShipped(t, DefaultScenario, Options{Trace: &trace})
	for _, want := range []string{
		"   1.000010 cbr0 in pod1: ARP who-has 10.244.0.3 tell 10.244.0.2 [0a:58:0a:f4:00:02 > broadcast]: flooded to 3 ports; learned 0a:58:0a:f4:00:02 on port 1",
		"cbr0 in pod2: ARP reply 10.244.0.3 is-at 0a:58:0a:f4:00:03 [0a:58:0a:f4:00:03 > 0a:58:0a:f4:00:02]: forwarded to pod1 (port 1); learned 0a:58:0a:f4:00:03 on port 2",
		"unknown unicast, flooded to 3 ports",
		"0a:58:0a:f4:00:04 moved to port 5",
		"pod1: echo reply from 10.244.0.3 seq 1 ttl 64",
	} {
		if !strings.Contains(trace.String(), want) {
			t.Errorf("trace lacks %q", want)
		}
	}
}

// TestTraceLimit caps a storm's trace.
func TestTraceLimit(t *testing.T) {
	var trace bytes.Buffer
	runShipped(t, "loop-storm", Options{Trace: &trace, TraceLimit: 100, MaxEvents: 5000})
	lines := strings.Count(trace.String(), "\n")
	if lines > 102 || !strings.Contains(trace.String(), "more trace lines not shown") {
		t.Errorf("%d lines, tail %q", lines, trace.String()[max(0, trace.Len()-200):])
	}
}

func TestResultJSON(t *testing.T) {
	res := runShipped(t, "same-node", Options{})
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back["passed"] != true || back["scenario"] != "same-node" {
		t.Errorf("json: %s", b[:200])
	}
}

// TestRunOnce: a Sim runs once.
func TestRunOnce(t *testing.T) {
	sc, err := LoadShipped("same-node")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(sc, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(); err == nil {
		t.Error("second Run succeeded")
	}
}

// TestStormWithoutQueues: a loop on links with no bandwidth limit (so no
// queue) multiplies frames without bound; max_frames stops it before
// memory does.
func TestStormWithoutQueues(t *testing.T) {
	res := runYAML(t, "storm.yaml", `
run: {max_frames: 5000}
switches: [{name: s1}, {name: s2}]
hosts: [{name: h1, ip: 10.0.0.1/24}]
links:
  - {a: h1, b: s1}
  - {name: c1, a: s1, b: s2, bandwidth: unlimited}
  - {name: c2, a: s1, b: s2, bandwidth: unlimited}
  - {name: c3, a: s1, b: s2, bandwidth: unlimited}
timeline:
  - arping: {from: h1, to: 10.0.0.9}
assert:
  - stopped: max_frames
`, Options{})
	if !res.Passed || res.Events > 100000 {
		t.Errorf("stopped %s after %d events", res.Stopped, res.Events)
	}
}
