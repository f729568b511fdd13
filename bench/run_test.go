package bench

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestUDPPaced checks the pacer that the udp64pdr search drives: held to a
// rate, the sender never sends more than the rate allows over the time it
// ran (plus its first token), nor far less, and a modest paced stream
// arrives through both systems (5% lost at most: this asserts delivery, not
// a rate).
func TestUDPPaced(t *testing.T) {
	needTopologies(t, "sends for seconds")
	ctx, _, br, ts := bothSystems(t, 2, 2*time.Minute)
	const pps = 20000
	for _, topo := range []Topology{br, ts} {
		ps := topo.Pods()
		u, err := UDPPaced(ctx, Flow{ps[0], ps[1]}, 64, pps, 500*time.Millisecond)
		if err != nil {
			t.Fatalf("%s: %v", topo.System(), err)
		}
		t.Logf("%s: paced at %d pps: sent %d in %v, received %d", topo.System(), pps, u.Sent, u.Elapsed, u.Received)
		if most := int64(pps*u.Elapsed.Seconds()) + 1; u.Sent > most {
			t.Errorf("%s: sent %d in %v: the pacer let out more than %d", topo.System(), u.Sent, u.Elapsed, most)
		}
		if least := int64(pps * u.Elapsed.Seconds() / 4); u.Sent < least {
			t.Errorf("%s: sent %d in %v, under a quarter of %d pps", topo.System(), u.Sent, u.Elapsed, pps)
		}
		if u.LossPct() >= 5 {
			t.Errorf("%s: %.2f%% of a %d pps stream lost (%d of %d arrived)", topo.System(), u.LossPct(), pps, u.Received, u.Sent)
		}
	}
}

// TestRunCases drives bench.Run, which `tapswitch bench` prints, through
// every case two pods can run, once on each system, and checks that each
// case reports every one of its metrics for both systems, finite, with a
// ratio wherever it means something, and that the table and the JSON name
// each case. pods8 and pods32 differ from pods2 only in the pod count;
// TestPods32 runs the largest.
func TestRunCases(t *testing.T) {
	needTopologies(t, "runs every case for seconds")
	ctx, _, br, ts := bothSystems(t, 2, 3*time.Minute)
	cases := []string{"tcp1", "tcp4", "udp64", "udp64pdr", "rr", "ping", "pods2"}
	rep, err := Run(ctx, []Topology{br, ts}, Options{
		Cases: cases, Duration: 400 * time.Millisecond, Warm: 100 * time.Millisecond, Rounds: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"tcp1":     {"throughput", "machine CPU"},
		"tcp4":     {"throughput", "machine CPU"},
		"udp64":    {"delivered", "sent", "loss"},
		"udp64pdr": {pdrMetric, "sent at that rate", "loss at that rate", "machine CPU"},
		"rr":       {"transactions", "latency p50", "latency p99"},
		"ping":     {"rtt median", "loss"},
		"pods2":    {"throughput", "machine CPU"},
	}
	for c, metrics := range want {
		for _, m := range metrics {
			i := slices.IndexFunc(rep.Results, func(r Result) bool { return r.Case == c && r.Metric == m })
			if i < 0 {
				t.Errorf("case %s: no %q in the report", c, m)
				continue
			}
			r := rep.Results[i]
			for _, sys := range []string{"bridge", "tapswitch"} {
				st := r.Systems[sys]
				if st == nil || len(st.Samples) != 1 || math.IsNaN(st.Median) || math.IsInf(st.Median, 0) || st.Median < 0 {
					t.Errorf("case %s, %s, %s: %+v", c, m, sys, st)
				}
			}
			// No ratio against a bridge whose rate was its sender's.
			if b := r.Systems["bridge"]; b != nil && b.SenderBound > 0 {
				if r.Ratio != 0 {
					t.Errorf("case %s, %s: ratio %v against a sender-bound bridge", c, m, r.Ratio)
				}
			} else if r.Unit != "%" && (r.Ratio <= 0 || math.IsNaN(r.Ratio)) {
				t.Errorf("case %s, %s: ratio %v", c, m, r.Ratio)
			}
		}
	}
	// The tapswitch daemon is a child process of its own (DaemonProcess):
	// every case reports its memory, and the bridge none. Both numbers come
	// from one read of /proc/PID/status, where the kernel reports VmHWM as
	// at least VmRSS, reset or not: no slack.
	for _, c := range cases {
		rss := map[string]*Stat{}
		for _, m := range []string{"daemon peak RSS", "daemon RSS at end"} {
			i := slices.IndexFunc(rep.Results, func(r Result) bool { return r.Case == c && r.Metric == m })
			if i < 0 {
				t.Errorf("case %s: no %q in the report", c, m)
				continue
			}
			r := rep.Results[i]
			if r.Unit != "MiB" || r.HigherBetter || r.Ratio != 0 {
				t.Errorf("case %s, %s: unit %q, higher better %v, ratio %v: want MiB, lower better, no ratio", c, m, r.Unit, r.HigherBetter, r.Ratio)
			}
			for sys, st := range r.Systems {
				if sys != "tapswitch" {
					t.Errorf("case %s, %s: reported for %s too: %+v", c, m, sys, st)
				}
			}
			rss[m] = r.Systems["tapswitch"]
		}
		peak, end := rss["daemon peak RSS"], rss["daemon RSS at end"]
		if peak == nil || end == nil || len(peak.Samples) != 1 || len(end.Samples) != 1 {
			t.Errorf("case %s: tapswitch RSS samples: peak %+v, end %+v", c, peak, end)
			continue
		}
		if p, e := peak.Samples[0], end.Samples[0]; !(e > 0 && e <= p) {
			t.Errorf("case %s: daemon RSS %.2f MiB at end, peak %.2f MiB: want 0 < end <= peak", c, e, p)
		}
	}
	// What udp64pdr promises: the delivered rate it reports lost under
	// PDRLoss, on each system.
	if i := slices.IndexFunc(rep.Results, func(r Result) bool { return r.Case == "udp64pdr" && r.Metric == "loss at that rate" }); i >= 0 {
		for sys, st := range rep.Results[i].Systems {
			if st.Median >= PDRLoss {
				t.Errorf("udp64pdr, %s: loss %.2f%% at the rate reported", sys, st.Median)
			}
		}
	}
	var tbl, js bytes.Buffer
	if err := rep.WriteTable(&tbl); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("the JSON report does not read back: %v", err)
	}
	if len(back.Results) != len(rep.Results) {
		t.Errorf("JSON has %d results, the report %d", len(back.Results), len(rep.Results))
	}
	for _, c := range cases {
		if !strings.Contains(tbl.String(), c+" ") {
			t.Errorf("the table does not name case %s:\n%s", c, tbl.String())
		}
	}
}

// TestIperf3 runs the cases iperf3 can cross-check (tcp1, tcp4, udp64,
// udp64pdr) with iperf3 on both systems through bench.Run: each reports its metrics
// with data moved, and the report says iperf3 ran. `make test` installs
// iperf3 when it runs as root.
func TestIperf3(t *testing.T) {
	needTopologies(t, "runs iperf3 for seconds")
	if _, err := Iperf3Version(); err != nil {
		t.Skipf("iperf3 unavailable: %v", err)
	}
	ctx, _, br, ts := bothSystems(t, 2, 2*time.Minute)
	rep, err := Run(ctx, []Topology{br, ts}, Options{
		Cases: []string{"tcp1", "tcp4", "udp64", "udp64pdr"}, Duration: time.Second, Rounds: 1, Iperf3: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "iperf 3") {
		t.Errorf("notes %q: want one naming the iperf3 that ran", rep.Notes)
	}
	for _, want := range []struct{ c, m string }{{"tcp1", "throughput"}, {"tcp4", "throughput"}, {"udp64", "delivered"}, {"udp64", "sent"}, {"udp64pdr", pdrMetric}} {
		i := slices.IndexFunc(rep.Results, func(r Result) bool { return r.Case == want.c && r.Metric == want.m })
		if i < 0 {
			t.Errorf("%s: no %s", want.c, want.m)
			continue
		}
		for _, sys := range []string{"bridge", "tapswitch"} {
			if st := rep.Results[i].Systems[sys]; st == nil || !(st.Median > 0) {
				t.Errorf("%s %s on %s: %+v", want.c, want.m, sys, st)
			} else {
				t.Logf("%s %s on %s: %.3g", want.c, want.m, sys, st.Median)
			}
		}
	}
}
