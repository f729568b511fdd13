package bench

import (
	"bufio"
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/internal/testenv"
	"github.com/tapswitch/tapswitch/netns"
)

// TestPacerNeverAhead drives the token bucket with irregular clocks (a
// sender woken late, early, or polled in a tight loop) at rates from a few
// to millions of datagrams a second and batches from 1 to 64: at no
// moment has it let out more than rate*(t-start), and a sender that sleeps
// as it is told gets within 1% of the rate.
func TestPacerNeverAhead(t *testing.T) {
	start := time.Unix(1000, 0)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, rate := range []float64{5, 1000, 20e3, 137e3, 450e3, 3e6} {
		for _, batch := range []int{1, 7, 32, 64} {
			p := newPacer(rate, batch, start)
			now, sent := start, int64(0)
			for range 20000 {
				// Woken at what the pacer asked, give or take: late
				// by up to 3x, or polled at once.
				w := p.wait()
				switch rng.IntN(4) {
				case 0:
					w = 0
				case 1:
					w = time.Duration(float64(w) * 3 * rng.Float64())
				default:
					w += time.Duration(rng.IntN(20)) * time.Microsecond
				}
				now = now.Add(w)
				n := p.take(now, batch)
				if n < 0 || n > batch {
					t.Fatalf("rate %v, batch %d: took %d", rate, batch, n)
				}
				sent += int64(n)
				if allowed := rate * now.Sub(start).Seconds(); float64(sent) > allowed+1e-6 {
					t.Fatalf("rate %v, batch %d: %d sent by %v, ahead of %.1f", rate, batch, sent, now.Sub(start), allowed)
				}
			}
			// A sender that sleeps exactly as told keeps up.
			p = newPacer(rate, batch, start)
			now, sent = start, 0
			for range 20000 {
				now = now.Add(max(p.wait(), time.Nanosecond))
				sent += int64(p.take(now, batch))
			}
			if want := rate * now.Sub(start).Seconds(); float64(sent) < 0.99*want-float64(batch) {
				t.Errorf("rate %v, batch %d: an obedient sender got %d out in %v, want about %.0f", rate, batch, sent, now.Sub(start), want)
			}
		}
	}
}

// TestSenderBound: which outcomes are the sender's limit, and that no
// ratio is taken against a system whose rate was its sender's.
func TestSenderBound(t *testing.T) {
	for _, c := range []struct {
		name    string
		u       UDP
		reached bool
	}{
		{"unpaced", UDP{Sent: 300e3, Received: 300e3, Elapsed: time.Second}, false},
		{"paced, reached", UDP{Sent: 99e3, Received: 99e3, Elapsed: time.Second, Offered: 100e3}, true},
		{"paced, just reached", UDP{Sent: 97e3, Received: 97e3, Elapsed: time.Second, Offered: 100e3}, true},
		{"paced, fell short", UDP{Sent: 96e3, Received: 96e3, Elapsed: time.Second, Offered: 100e3}, false},
	} {
		if got := c.u.ReachedOffered(); got != c.reached {
			t.Errorf("%s: ReachedOffered %v, want %v", c.name, got, c.reached)
		}
		if got := c.u.SenderBound(); got != !c.reached {
			t.Errorf("%s: SenderBound %v, want %v", c.name, got, !c.reached)
		}
	}

	// The same outcomes on a machine whose CPUs were full: no faster
	// sender could run there, so the rate is the system's (with the
	// sender's cost in it, as for every system on the machine).
	meter := func(busy float64) *cpuMeter {
		// Two CPUs for a second: 2 CPU-seconds, busy or idle.
		return &cpuMeter{machOK: true, mach0: 50, mach1: 50 + 2*busy, idle0: 10, idle1: 10 + 2*(1-busy)}
	}
	for _, c := range []struct {
		name         string
		u            UDP
		busy         float64
		machineBound bool
	}{
		{"unpaced, machine full", UDP{Sent: 600e3, Received: 600e3, Elapsed: time.Second}, 0.93, true},
		{"unpaced, a CPU's share idle", UDP{Sent: 300e3, Received: 300e3, Elapsed: time.Second}, 0.80, false},
		{"paced, fell short on a full machine", UDP{Sent: 80e3, Received: 80e3, Elapsed: time.Second, Offered: 100e3}, 0.97, true},
		{"paced, fell short with CPU to spare", UDP{Sent: 80e3, Received: 80e3, Elapsed: time.Second, Offered: 100e3}, 0.5, false},
	} {
		c.u.cpu = meter(c.busy)
		if got, ok := c.u.Busy(); !ok || got < c.busy-1e-9 || got > c.busy+1e-9 {
			t.Errorf("%s: Busy %v (%v), want %v", c.name, got, ok, c.busy)
		}
		if got := c.u.MachineBound(); got != c.machineBound {
			t.Errorf("%s: MachineBound %v, want %v", c.name, got, c.machineBound)
		}
		if got := c.u.SenderBound(); got != !c.machineBound {
			t.Errorf("%s: SenderBound %v, want %v", c.name, got, !c.machineBound)
		}
	}
	if (UDP{Sent: 1, Received: 1, Elapsed: time.Second}).MachineBound() {
		t.Error("MachineBound without a CPU measurement")
	}

	// pdrSearch on fake systems: the knee found with a sender that
	// reaches every rate is the system's; a probe that lost nothing or a
	// paced sender that saturated is the sender's.
	for _, c := range []struct {
		name                 string
		knee, unpaced, paced float64
		bound                bool
	}{
		{"knee found", 500e3, 1e6, 0, false},
		{"paced sender saturates", 700e3, 1e6, 400e3, true},
		{"probe lost nothing", 900e3, 600e3, 0, true},
	} {
		sys := &pdrSystem{knee: c.knee, unpaced: c.unpaced, paced: c.paced}
		got, err := pdrSearch(sys.probe(), sys.trial)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got.SenderBound() != c.bound {
			t.Errorf("%s: %+v: SenderBound %v, want %v", c.name, got, got.SenderBound(), c.bound)
		}
	}

	st := func(median float64, bound int) *Stat {
		s := summarise([]float64{median, median, median})
		s.SenderBound = bound
		return s
	}
	for _, c := range []struct {
		name      string
		ts, other *Stat
		unit      string
		ratio     float64
		atLeast   bool
	}{
		{"neither bound", st(100, 0), st(200, 0), "kpps", 0.5, false},
		{"the bridge bound: it would flatter tapswitch", st(100, 0), st(120, 3), "kpps", 0, false},
		{"the bridge bound in one round", st(100, 0), st(120, 1), "kpps", 0, false},
		{"both bound", st(100, 3), st(120, 3), "kpps", 0, false},
		{"tapswitch bound: a lower bound", st(100, 2), st(200, 0), "kpps", 0.5, true},
		{"a loss", st(0.5, 0), st(0.2, 0), "%", 0, false},
		{"no bridge", st(100, 0), nil, "kpps", 0, false},
	} {
		r, atLeast := ratioOf(c.ts, c.other, c.unit)
		if r != c.ratio || atLeast != c.atLeast {
			t.Errorf("%s: ratio %v (at least %v), want %v (%v)", c.name, r, atLeast, c.ratio, c.atLeast)
		}
	}

	// The table says so in the system's column and the ratio's.
	rep := &Report{Systems: []string{"bridge", "tapswitch"}, Results: []Result{
		{Case: "udp64pdr", Metric: pdrMetric, Unit: "kpps", HigherBetter: true,
			Systems: map[string]*Stat{"bridge": st(450, 3), "tapswitch": st(110, 0)}},
		{Case: "udp64pdr4", Metric: pdrMetric, Unit: "kpps", HigherBetter: true, Ratio: 0.5, RatioAtLeast: true,
			Systems: map[string]*Stat{"bridge": st(200, 0), "tapswitch": st(100, 1)}},
	}}
	var b bytes.Buffer
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	if len(lines) < 4 {
		t.Fatalf("table:\n%s", b.String())
	}
	if l := lines[1]; !strings.Contains(l, "450.0 sender-bound") || !strings.Contains(l, "- (sender-bound)") || strings.Contains(l, "0.24x") {
		t.Errorf("the bridge sender-bound, row %q", l)
	}
	if l := lines[2]; !strings.Contains(l, "100.0 sender-bound 1/3") || !strings.Contains(l, ">= 0.50x") {
		t.Errorf("tapswitch sender-bound in 1 of 3, row %q", l)
	}
	if !strings.Contains(b.String(), "note: sender-bound:") {
		t.Errorf("no note on sender-bound:\n%s", b.String())
	}
}

// udpCounters are a namespace's UDP counters from /proc/net/snmp, read
// on a thread inside it.
type udpCounters struct{ in, out, rcvbufErrs int64 }

func readUDPCounters(t *testing.T, p Pod) udpCounters {
	t.Helper()
	var c udpCounters
	err := netns.FromPath(p.NetNS).Run(func() error {
		b, err := os.ReadFile("/proc/thread-self/net/snmp")
		if err != nil {
			return err
		}
		var names []string
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 0 || f[0] != "Udp:" {
				continue
			}
			if names == nil {
				names = f
				continue
			}
			for i, v := range f {
				n, _ := strconv.ParseInt(v, 10, 64)
				switch names[i] {
				case "InDatagrams":
					c.in = n
				case "OutDatagrams":
					c.out = n
				case "RcvbufErrors":
					c.rcvbufErrs = n
				}
			}
		}
		return sc.Err()
	})

	if err != nil {
		t.Fatalf("udp counters of %s: %v", p.NetNS, err)
	}
	return c
}

// TestUDPSendCounts runs the batch engine between pods on a kernel bridge
// at a rate the bridge carries without loss, with several senders per flow
// and two flows, and checks its counts against the kernel's own: the
// sending namespaces' OutDatagrams grew by exactly what it says it sent
// (plus the warm-up datagrams), the receiving ones' InDatagrams by exactly
// what it says it received, every datagram sent arrived, and the pacer
// kept under its rate and near it.
func TestUDPSendCounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, a bridge and veth pairs")
	}
	prefix := testPrefix(t)
	sub, err := testenv.FreeSubnet(252)
	if err != nil {
		t.Fatal(err)
	}
	br, err := BuildBridge(prefix, sub, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := br.Close(); err != nil {
			t.Errorf("bridge close: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ps := br.Pods()
	// Permanent neighbours: the kernel's neighbour table is shared by all
	// namespaces, and on a machine running other network tests a full one
	// would drop a flow's datagrams while ARP cannot resolve.
	if err := StaticNeighbours(ps); err != nil {
		t.Fatal(err)
	}
	flows := []Flow{{ps[0], ps[1]}, {ps[2], ps[3]}}
	for _, load := range []UDPLoad{
		{Size: 64, PPS: 20e3, Batch: 32, Senders: 2},
		{Size: 1000, PPS: 8e3, Batch: 1, Senders: 1},
	} {
		var before [4]udpCounters
		for i, p := range ps {
			before[i] = readUDPCounters(t, p)
		}
		u, err := UDPSend(ctx, flows, load, 400*time.Millisecond, nil)
		if err != nil {
			t.Fatalf("%+v: %v", load, err)
		}
		t.Logf("%+v: sent %d, received %d in %v", load, u.Sent, u.Received, u.Elapsed)
		var after [4]udpCounters
		for i, p := range ps {
			after[i] = readUDPCounters(t, p)
		}
		streams := int64(len(flows) * max(load.Senders, 1))
		out := after[0].out - before[0].out + after[2].out - before[2].out
		in := after[1].in - before[1].in + after[3].in - before[3].in
		if drops := after[1].rcvbufErrs - before[1].rcvbufErrs + after[3].rcvbufErrs - before[3].rcvbufErrs; drops != 0 {
			t.Errorf("%+v: %d datagrams dropped at the receiving sockets", load, drops)
		}
		if out != u.Sent+streams*udpWarm {
			t.Errorf("%+v: the kernel sent %d datagrams, the engine says %d (+%d warm-up)", load, out, u.Sent, streams*udpWarm)
		}
		if in != u.Received+streams*udpWarm {
			t.Errorf("%+v: the kernel delivered %d datagrams, the engine counted %d (+%d warm-up)", load, in, u.Received, streams*udpWarm)
		}
		if u.Received != u.Sent || u.Sent == 0 {
			t.Errorf("%+v: %d sent, %d received", load, u.Sent, u.Received)
		}
		if most := load.PPS * u.Elapsed.Seconds(); float64(u.Sent) > most {
			t.Errorf("%+v: sent %d in %v, more than %.0f", load, u.Sent, u.Elapsed, most)
		}
		// Not far under the rate: a loose bound, since a busy machine
		// starves the senders for longer than the bucket is deep
		// (ReachedOffered's own threshold is tested above).
		if u.Offered != load.PPS || u.SentPPS() < 0.5*load.PPS {
			t.Errorf("%+v: sent %.0f/s of %.0f offered: the sender fell short", load, u.SentPPS(), u.Offered)
		}
	}

	// Unpaced, the batch sender outruns a one-datagram-per-call sender:
	// the point of batching. Loose (a factor of 1.2) for busy machines.
	one, err := UDPSend(ctx, flows[:1], UDPLoad{Size: 64, Batch: 1}, 300*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	many, err := UDPSend(ctx, flows[:1], UDPLoad{Size: 64, Batch: 32}, 300*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("unpaced: one per call %.0f/s, 32 per call %.0f/s", one.SentPPS(), many.SentPPS())
	if many.SentPPS() < 1.2*one.SentPPS() || math.IsNaN(many.SentPPS()) {
		t.Errorf("unpaced: 32 per call sent %.0f/s, one per call %.0f/s", many.SentPPS(), one.SentPPS())
	}
	if !one.SenderBound() || one.Offered != 0 {
		t.Errorf("unpaced run %+v not sender-bound", one)
	}
}
