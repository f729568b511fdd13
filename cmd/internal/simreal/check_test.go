package simreal

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/sim"
)

// shipped pins, for every shipped scenario, whether the real node can
// build it: "" when it can (TestShippedCompare runs it and wants
// agreement), else the refusal's text. A new shipped scenario fails here
// until it is added, so sim/README.md's table stays complete.
var shipped = map[string]string{
	"ageing":                  "ageing.yaml: not realisable on the real node: timeline: runs 1h0m0s of wall-clock time on the real node, more than 1m0s",
	"arp-spoof":               "",
	"arp-spoof-guard":         "",
	"arp-suppress-off":        "arp-suppress-off.yaml: not realisable on the real node: timeline: runs 4m58.3s of wall-clock time on the real node, more than 1m0s",
	"arp-suppress-on":         "arp-suppress-on.yaml: not realisable on the real node: timeline: runs 4m58.3s",
	"cross-node":              "cross-node.yaml:12: not realisable on the real node: switches: 3 switches; the daemon is one switch with no uplink port",
	"loop-storm":              "loop-storm.yaml:13: not realisable on the real node: switches: 2 switches",
	"loop-storm-control":      "loop-storm-control.yaml:24: not realisable on the real node: switches: 2 switches",
	"mac-flood-fair":          "",
	"mac-flood-stop":          "",
	"node":                    "node.yaml:43: not realisable on the real node: timeline move: the daemon cannot plug a pod's interface into another port and keep the old one",
	"pod-flood-policed":       "pod-flood-policed.yaml:26: not realisable on the real node: switches.cbr0.ports.flooder.lock_mac: the daemon's switch.lock_pod_mac is node-wide",
	"pods32-arp-suppress-off": "pods32-arp-suppress-off.yaml: not realisable on the real node: timeline: runs 1m35s",
	"pods32-arp-suppress-on":  "pods32-arp-suppress-on.yaml: not realisable on the real node: timeline: runs 1m35s",
	"same-node":               "same-node.yaml:17: not realisable on the real node: links.pod1--cbr0.latency 20µs",
}

func loadShipped(t *testing.T, name string) *sim.Scenario {
	t.Helper()
	data, err := sim.ShippedSource(name)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sim.Parse(name+".yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func TestShippedRefusals(t *testing.T) {
	for _, name := range sim.Shipped() {
		want, ok := shipped[name]
		if !ok {
			t.Errorf("shipped scenario %s: not in the table of realisable scenarios; add it (and to sim/README.md)", name)
			continue
		}
		err := Check(loadShipped(t, name))
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: refused (%v), want realisable", name, err)
		case want != "" && err == nil:
			t.Errorf("%s: realisable, want refused with %q", name, want)
		case want != "" && !strings.HasPrefix(err.Error(), want):
			t.Errorf("%s: refused with\n  %v\nwant\n  %s...", name, err, want)
		}
		var se *sim.Error
		if err != nil && !errors.As(err, &se) {
			t.Errorf("%s: refusal %v is not a *sim.Error (exit status 2)", name, err)
		}
	}
	if len(shipped) != len(sim.Shipped()) {
		t.Errorf("the table has %d scenarios, %d are shipped", len(shipped), len(sim.Shipped()))
	}
}

const base = `name: t
switches:
  - name: cbr0
hosts:
  - {name: pod1, ip: 10.244.0.2/24, gateway: 10.244.0.1}
  - {name: gw, ip: 10.244.0.1/24, forward: true}
links:
  - {a: pod1, b: cbr0}
  - {a: gw, b: cbr0}
timeline:
  - at: 1s
    ping: {name: p, from: pod1, to: gw, count: 2}
`

func TestCheckRefusesWhatTheNodeCannotBuild(t *testing.T) {
	for _, c := range []struct{ name, yaml, want string }{
		{"ok", base, ""},
		{"wide subnet", strings.ReplaceAll(base, "/24", "/1"), ""},
		{"latency", strings.Replace(base, "{a: pod1, b: cbr0}", "{a: pod1, b: cbr0, latency: 1ms}", 1), "t.yaml:8: not realisable on the real node: links.pod1--cbr0.latency 1ms"},
		{"loss", strings.Replace(base, "{a: gw, b: cbr0}", "{a: gw, b: cbr0, loss: 1%}", 1), "t.yaml:9: not realisable on the real node: links.gw--cbr0.loss"},
		{"bandwidth", strings.Replace(base, "{a: gw, b: cbr0}", "{a: gw, b: cbr0, bandwidth: 1Gbit}", 1), "t.yaml:9: not realisable on the real node: links.gw--cbr0.bandwidth"},
		{"queue", strings.Replace(base, "{a: gw, b: cbr0}", "{a: gw, b: cbr0, queue: 10}", 1), "t.yaml:9: not realisable on the real node: links.gw--cbr0.queue 10"},
		{"down", strings.Replace(base, "{a: gw, b: cbr0}", "{a: gw, b: cbr0, down: true}", 1), "t.yaml:9: not realisable on the real node: links.gw--cbr0.down"},
		{"two switches", strings.Replace(base, "  - name: cbr0\n", "  - name: cbr0\n  - name: sw2\n", 1), "t.yaml:4: not realisable on the real node: switches: 2 switches"},
		{"trunk", strings.Replace(base, "  - name: cbr0\n", "  - name: cbr0\n    ports:\n      - {name: pod1, trunk: true, allowed: [10]}\n", 1), "t.yaml:5: not realisable on the real node: switches.cbr0.ports.pod1.trunk"},
		{"hairpin", strings.Replace(base, "  - name: cbr0\n", "  - name: cbr0\n    ports:\n      - {name: pod1, hairpin: true}\n", 1), "t.yaml:5: not realisable on the real node: switches.cbr0.ports.pod1.hairpin"},
		{"per-port storm", strings.Replace(base, "  - name: cbr0\n", "  - name: cbr0\n    ports:\n      - {name: pod1, storm: 100}\n", 1), "t.yaml:5: not realisable on the real node: switches.cbr0.ports.pod1.storm: the daemon's switch.storm_pps is node-wide"},
		{"other subnet", strings.Replace(base, "10.244.0.1/24, forward", "10.245.0.1/24, forward", 1), "t.yaml:6: not realisable on the real node: hosts.gw.ip 10.245.0.1/24: the daemon has one pod subnet"},
		{"pod name", strings.ReplaceAll(base, "pod1", "Pod1"), "t.yaml:5: not realisable on the real node: hosts.Pod1: the host's name is a pod's"},
		{"long", strings.Replace(base, "at: 1s", "at: 70s", 1), "t.yaml: not realisable on the real node: timeline: runs 1m13s of wall-clock time on the real node, more than 1m0s"},
		{"duration", strings.Replace(base, "switches:", "run: {duration: 2m}\nswitches:", 1), "t.yaml: not realisable on the real node: timeline: runs 2m0s"},
		{"move", base + "  - move: {host: pod1, to: cbr0:p1b}\n", "t.yaml:13: not realisable on the real node: timeline move: the daemon cannot plug"},
		{"link_down", base + "  - link_down: pod1--cbr0\n", "t.yaml:13: not realisable on the real node: timeline link_down/link_up: the daemon does not flush"},
		{"endless flow", base + "  - flow: {name: f, from: pod1, to: gw}\n", "t.yaml:13: not realisable on the real node: timeline flow f: no count, no stop_flow"},
		{"stopped flow", base + "  - flow: {name: f, from: pod1, to: gw}\n  - wait: 1s\n    stop_flow: f\n", ""},
		{"short arp_timeout", strings.Replace(base, "gateway: 10.244.0.1}", "gateway: 10.244.0.1, arp_timeout: 2s}", 1), "t.yaml:5: not realisable on the real node: hosts.pod1.arp_timeout 2s: shorter than the run (4s)"},
		{"stopped", base + "assert:\n  - stopped: max_events\n", "t.yaml:14: not realisable on the real node: assert stopped: max_events"},
		{"router", `name: t
switches:
  - name: cbr0
hosts:
  - {name: pod1, ip: 10.244.0.2/24, gateway: 10.244.0.1}
  - name: gw
    forward: true
    interfaces:
      - {name: cbr0, ip: 10.244.0.1/24}
      - {name: eth0, ip: 192.168.1.1/24}
  - {name: out, ip: 192.168.1.2/24}
links:
  - {a: pod1, b: cbr0}
  - {a: gw:cbr0, b: cbr0}
  - {a: gw:eth0, b: out}
`, "t.yaml:6: not realisable on the real node: hosts.gw.interfaces: 2 interfaces"},
	} {
		t.Run(c.name, func(t *testing.T) {
			sc, err := sim.Parse("t.yaml", []byte(c.yaml))
			if err == nil && c.name == "wide subnet" {
				p, perr := newPlan(sc)
				if perr != nil || p.gw != netip.MustParseAddr("127.255.255.254") {
					t.Fatalf("the daemon's gateway in 0.0.0.0/1: %v, %v", p, perr)
				}
			}
			if err != nil {
				t.Fatalf("the scenario itself is bad: %v", err)
			}
			err = Check(sc)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want == "":
			case err == nil:
				t.Fatalf("accepted, want %q", c.want)
			case !strings.HasPrefix(err.Error(), c.want):
				t.Fatalf("got\n  %v\nwant\n  %s...", err, c.want)
			case !IsRefusal(err):
				t.Fatalf("%v: not a refusal", err)
			}
		})
	}
}

func TestToleranceBands(t *testing.T) {
	for _, c := range []struct {
		name  string
		x, y  float64
		agree bool
	}{
		{"pings.p.received", 3, 3, true},
		{"pings.p.received", 3, 2, false},
		{"switches.cbr0.fdb.entries", 64, 63, false},
		{"switches.cbr0.ports.pod1.counters.drops.arp-guard", 3, 3, true},
		{"switches.cbr0.ports.pod1.counters.rx_frames", 0, 1, false},
		{"switches.cbr0.ports.pod1.counters.rx_frames", 100, 104, true},
		{"switches.cbr0.ports.pod1.counters.rx_frames", 10000, 10400, true},
		{"switches.cbr0.ports.pod1.counters.rx_frames", 10000, 10600, false},
		{"pings.p.rtt_min_ns", 40e3, 40e6, true},
		{"pings.p.rtt_min_ns", 40e3, 60e6, false},
		{"pings.p.rtt_avg_ns", 40e3, 40e6, true},
		{"pings.p.rtt_avg_ns", 40e3, 1e9, false},
		{"pings.p.rtt_max_ns", 80e3, 400e6, true},
		{"pings.p.rtt_max_ns", 80e3, 1e9, false},
		{"switches.cbr0.flood_ratio", 0.4, 0.44, true},
		{"switches.cbr0.flood_ratio", 0.4, 0.5, false},
		{"links.pod1--cbr0.queue_drops", 0, 1, false},
	} {
		tol, ok := tolerance(c.name)
		if !ok {
			t.Errorf("%s: not compared", c.name)
			continue
		}
		if got := within(tol, c.x, c.y); got != c.agree {
			t.Errorf("%s (%s): %v against %v: agree %v, want %v", c.name, tol, c.x, c.y, got, c.agree)
		}
	}
	for _, n := range []string{"events", "deliveries", "end_ns", "links.a--b.delivered", "hosts.attacker.dropped", "switches.cbr0.fdb.capacity"} {
		if _, ok := tolerance(n); ok {
			t.Errorf("%s: compared, but has no real counterpart", n)
		}
	}
}

func TestScale(t *testing.T) {
	sc := loadShipped(t, "ageing")
	if err := Check(sc); err == nil || !strings.Contains(err.Error(), "(--time-scale shrinks it)") {
		t.Fatalf("an hour unscaled: %v, want refused with a hint", err)
	}
	s, err := Scale(sc, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	if s.Switches[0].Ageing != 3*time.Second || s.Timeline[2].At != 100*time.Millisecond || s.Assertions[0].At != 3*time.Second {
		t.Errorf("scaled: ageing %v, step 3 at %v, assertion 1 at %v; want 3s, 100ms, 3s", s.Switches[0].Ageing, s.Timeline[2].At, s.Assertions[0].At)
	}
	if f := s.Timeline[2].Action.(*sim.Flow); f.Rate < 1.66 || f.Rate > 1.67 {
		t.Errorf("scaled flow rate %g, want 1.6666667", f.Rate)
	}
	if f := sc.Timeline[2].Action.(*sim.Flow); f.Rate != 0.016666667 || sc.Switches[0].Ageing != 300*time.Second {
		t.Errorf("Scale changed the scenario it was given")
	}
	// pod2's 60 s ARP timeout becomes 600 ms, shorter than the 36 s run.
	if err := Check(s); err == nil || !strings.Contains(err.Error(), "hosts.pod2.arp_timeout 600ms: shorter than the run") {
		t.Errorf("scaled ageing: %v", err)
	}
	if _, err := Scale(loadShipped(t, "pod-flood-policed"), 0.5); err == nil || !strings.Contains(err.Error(), "pod-flood-policed.yaml:26:") {
		t.Errorf("a per-second meter scaled: %v, want refused at its line", err)
	}
	for _, f := range []float64{0, -1, 1.5} {
		if _, err := Scale(sc, f); err == nil {
			t.Errorf("--time-scale %g accepted", f)
		}
	}
}
