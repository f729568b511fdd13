package simreal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tapswitch/tapswitch/cmd/internal/nodetest"
	"github.com/tapswitch/tapswitch/internal/testenv"
	"github.com/tapswitch/tapswitch/sim"
)

// testPrefix is a unique prefix for one run's namespaces, and a cleanup
// that fails the test if any of them is left.
func testPrefix(t *testing.T) string {
	p := testenv.NewPrefix("sq", 5)
	t.Cleanup(func() {
		if left := testenv.Left(p); len(left) > 0 {
			t.Errorf("left behind: %s", strings.Join(left, ", "))
			testenv.Sweep(p)
		}
	})
	return p
}

// TestShippedCompare runs every shipped scenario that the real node can
// build on the simulator and on the real node, and wants them to agree
// within the stated tolerances (shipped pins which ones; the others are
// refused, TestShippedRefusals). One of them also writes its pcaps.
func TestShippedCompare(t *testing.T) {
	nodetest.RequireRoot(t)
	for _, name := range sim.Shipped() {
		if shipped[name] != "" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			// In parallel: each run is its own node in its own
			// namespaces, and the timelines are wall-clock time.
			t.Parallel()
			sc := loadShipped(t, name)
			o := Options{Prefix: testPrefix(t)}
			if name == "arp-spoof-guard" {
				o.Pcap = t.TempDir()
			}
			t0 := time.Now()
			c, err := RunCompare(context.Background(), sc, o)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d rows in %v", name, len(c.Rows), time.Since(t0).Round(time.Millisecond))
			if !c.Agree {
				var b strings.Builder
				for _, r := range c.Rows {
					if !r.Agree {
						fmt.Fprintf(&b, "  %s %s: sim %s, real %s (%s)\n", r.Kind, r.Name, r.Sim, r.Real, r.Tolerance)
					}
				}
				t.Errorf("%s: %d rows disagree:\n%s", name, c.Disagreed, b.String())
			}
			if o.Pcap != "" {
				checkPcaps(t, o.Pcap, []string{"cbr0_pod1", "cbr0_gw", "cbr0_attacker"})
			}
		})
	}
}

// TestTimeScaleCompare runs a 25 s ageing scenario five times as fast on
// both sides: the 20 s ageing becomes 4 s, and the two still agree.
func TestTimeScaleCompare(t *testing.T) {
	nodetest.RequireRoot(t)
	t.Parallel()
	compareFile(t, "testdata/ageing-short.yaml", 0.2)
}

// TestKnownDifferenceLockMAC pins the difference sim/README.md documents:
// under lock_pod_mac the TAP's kernel filter drops a flood from other
// source MACs before the daemon reads it (the TAP's drops), where the
// simulator's switch drops it (src-lock). Everything else agrees: the
// assertions, what was delivered, what the table learned.
func TestKnownDifferenceLockMAC(t *testing.T) {
	nodetest.RequireRoot(t)
	t.Parallel()
	c := compareFileRows(t, "testdata/lock-mac.yaml", 1)
	var got []string
	for _, r := range c.Rows {
		if !r.Agree {
			got = append(got, r.Name+": "+r.Sim+" "+r.Real)
		}
	}
	want := []string{
		"links.flooder--cbr0:flooder.queue_drops: 0 1000",
		"switches.cbr0.dropped: 1000 0",
		"switches.cbr0.flood_ratio: 0.0009921 0.125",
		"switches.cbr0.ports.flooder.counters.drops.src-lock: 1000 0",
		"switches.cbr0.ports.flooder.counters.rx_bytes: 60000 0",
		"switches.cbr0.ports.flooder.counters.rx_frames: 1000 0",
		"switches.cbr0.rx_frames: 1008 8",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("disagreements:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestActionsCompare compares a scenario of the actions no shipped
// scenario realises: static_arp, garp, arping, stop_flow, remove_port.
func TestActionsCompare(t *testing.T) {
	nodetest.RequireRoot(t)
	t.Parallel()
	compareFile(t, "testdata/actions.yaml", 1)
}

func compareFile(t *testing.T, file string, scale float64) {
	c := compareFileRows(t, file, scale)
	if !c.Agree {
		var b strings.Builder
		for _, r := range c.Rows {
			if !r.Agree {
				fmt.Fprintf(&b, "  %s %s: sim %s, real %s (%s)\n", r.Kind, r.Name, r.Sim, r.Real, r.Tolerance)
			}
		}
		t.Errorf("%d rows disagree:\n%s", c.Disagreed, b.String())
	}
	if len(c.Rows) < 10 {
		t.Errorf("%d rows: the table lost the assertions", len(c.Rows))
	}
}

// compareFileRows compares the scenario in file, scaled.
func compareFileRows(t *testing.T, file string, scale float64) *Comparison {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sim.Parse(filepath.Base(file), data)
	if err != nil {
		t.Fatal(err)
	}
	if sc, err = Scale(sc, scale); err != nil {
		t.Fatal(err)
	}
	c, err := RunCompare(context.Background(), sc, Options{Prefix: testPrefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkPcaps wants one readable pcap per port, each with frames in it.
func checkPcaps(t *testing.T, dir string, ports []string) {
	for _, p := range ports {
		f, err := os.Open(filepath.Join(dir, p+".pcap"))
		if err != nil {
			t.Error(err)
			continue
		}
		r, err := pcapgo.NewReader(f)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			f.Close()
			continue
		}
		n := 0
		for {
			if _, _, err := r.ReadPacketData(); err != nil {
				if !errors.Is(err, io.EOF) {
					t.Errorf("%s: %v", p, err)
				}
				break
			}
			n++
		}
		f.Close()
		if n == 0 {
			t.Errorf("%s.pcap: no frames", p)
		}
	}
}

// TestRealCancelCleansUp stops a real run half way, as Ctrl-C does: the
// run returns the context's error and leaves no namespace behind (the
// prefix's cleanup checks).
func TestRealCancelCleansUp(t *testing.T) {
	nodetest.RequireRoot(t)
	sc := loadShipped(t, "arp-spoof-guard")
	prefix := testPrefix(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := Run(ctx, sc, Options{Prefix: prefix})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the context's deadline", err)
	}
	if left := testenv.Namespaces(prefix); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}

// TestRealRefusesBeforeBuilding: a refused scenario makes nothing.
func TestRealRefusesBeforeBuilding(t *testing.T) {
	nodetest.RequireRoot(t)
	prefix := testPrefix(t)
	_, err := Run(context.Background(), loadShipped(t, "cross-node"), Options{Prefix: prefix})
	if !IsRefusal(err) {
		t.Fatalf("got %v, want a refusal", err)
	}
}
