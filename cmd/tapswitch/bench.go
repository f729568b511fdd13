//go:build !nolab

package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tapswitch/tapswitch/bench"
	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/cmd/internal/config"
	"github.com/tapswitch/tapswitch/cmd/internal/daemon"
	"github.com/tapswitch/tapswitch/internal/testenv"
)

// busyPct is the machine's busy share at which a rate counts as the
// machine's, not the sender's (bench.MachineBoundShare), for the help.
var busyPct = fmt.Sprintf("%.0f%%", 100*bench.MachineBoundShare)

func newBenchCmd() *cobra.Command {
	var (
		quick, withOVS, inProcess bool
		useIperf3                 bool
		cases                     string
		duration, warm            time.Duration
		rounds, queues, batch     int
		udpBatch, udpSenders      int
		spin                      time.Duration
		spinCPU, nice             int
		txqlen                    int
		output, plotFile, profile string
	)
	cmd := &cobra.Command{
		Use:   "bench [--quick] [--cases LIST] [--duration D] [--rounds N] [-o json] [--plot FILE] [--with-ovs]",
		Short: "Compare tapswitch with the kernel bridge (cbr0 + veth) end to end on this machine (root)",
		Long: `Build the same pod topology twice on this machine, pods behind a Linux bridge
with veth pairs (the cbr0 baseline) and pods behind a tapswitch daemon (run as
a child process, ` + "`tapswitch run`" + `, with pods added by ` + "`tapswitch pod add`" + `), and
measure both with Go sockets opened inside the pod namespaces. Each case runs
against the systems in alternation (bridge, tapswitch, bridge, tapswitch, ...);
the report gives each system's median and min-max and the tapswitch/bridge
ratio of the medians.

With --with-ovs a third topology joins the alternation: an Open vSwitch bridge
on its userspace datapath (datapath_type=netdev) with a type=tap port per pod,
each TAP moved into its pod's namespace as eth0, forwarding with OVS's default
NORMAL flow and OVS's global defaults (no userspace TSO: its TAPs carry no
virtio-net header, so the pods segment TCP in software, as OVS ships); the
report adds the tapswitch/ovs ratio. It needs ovs-vswitchd
running (` + "`make ovs`" + ` installs and starts it); without it the bench says why and
measures the other two.

Traffic comes from Go sockets the bench opens inside the pods. With --iperf3,
tcp1, tcp4, udp64 and udp64pdr run iperf3 instead (a one-off server in the
receiving pod, the client in the sending one, entered with nsenter; --duration
and --warm rounded to whole seconds, so each udp64pdr trial takes at least a
second), to cross-check the engine; the other cases have no iperf3 equivalent
and keep the Go engine. The report notes which ran.

Cases (default all): ` + strings.Join(bench.FullCases(), ", ") + `
  tcp1, tcp4  bulk TCP pod0 -> pod1, 1 or 4 streams (Gbit/s, CPU-s per Gbit)
  udp64       UDP flood with 64-byte payloads, the sender unpaced (sent,
              delivered kpps, loss %)
  udp64pdr    the highest rate of 64-byte datagrams delivered with under 1%
              loss (the partial drop rate of RFC 2544-style testing): an
              unpaced probe, then 6 paced trials bisecting the offered rate,
              each a quarter of --duration (at least 0.25 s). The sender
              writes --udp-batch datagrams per sendmmsg(2) call from
              --udp-senders sockets, and the receivers read with
              recvmmsg(2). A rate the sender set is marked sender-bound:
              the probe lost nothing (the system took all the sender made),
              or a paced sender fell short of 97% of the offered rate, while
              the machine's CPUs were under ` + busyPct + ` busy; the system's own rate
              is higher, and no ratio is taken against it (with only
              tapswitch's sender-bound, the ratio reads ">="). With the CPUs
              ` + busyPct + ` busy or more the rate is the machine's: no faster sender
              could run there. Also CPU-s per million datagrams delivered at
              that rate and the machine's busy share ("machine busy")
  udp64pdr4   udp64pdr over 4 pod pairs at once (pod0 -> pod1, pod2 -> pod3,
              ...), the offered rate split among them
  rr          TCP request/response with 1-byte messages, like netperf TCP_RR
  ping        ICMP echo RTT
  podsN       N pods, one TCP stream per ordered pair (aggregate Gbit/s);
              pods32 is 992 streams. When pods8 or pods32 is selected, every
              pod of each system gets permanent neighbour entries for all the
              others once, before the first case, so every case of the run
              sees them: the kernel's neighbour table is shared by all
              namespaces and holds 1024 dynamic entries by default
              (gc_thresh3), fewer than two systems' 32 pods need.

"switch CPU" is the switch process's user+system time per Gbit moved (the
tapswitch daemon; ovs-vswitchd, including any other bridges it serves); the
kernel bridge forwards in softirq context charged to whichever task ran, so it
has none. "machine CPU" is all CPUs' busy time per Gbit (/proc/stat), for all.
"daemon peak RSS" is the tapswitch daemon's VmHWM over each round (reset at
the round's start) and "daemon RSS at end" its VmRSS when the round ends, both
from /proc/PID/status; not with --in-process, where the daemon's memory is
the bench's.

Everything is created under a per-run name prefix in fresh 10.251.X.0/24
(tapswitch), 10.252.X.0/24 (bridge) and 10.253.X.0/24 (OVS) subnets and
removed on exit, failure or Ctrl-C; OVS bridges are deleted only when their
names carry the run's prefix.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if os.Geteuid() != 0 {
				return &exitError{code: 2, err: errors.New("bench needs root (it creates network namespaces, a bridge and TAPs)")}
			}
			if err := checkOutput(output); err != nil {
				return err
			}
			if cmd.Flags().Changed("nice") && (inProcess || profile != "") {
				// The daemon inside this process never runs daemon.Run,
				// where the nice value is set.
				return &exitError{code: 2, err: errors.New("--nice sets the daemon child's priority: not with --in-process or --cpuprofile")}
			}
			if useIperf3 {
				if _, err := bench.Iperf3Version(); err != nil {
					return &exitError{code: 2, err: fmt.Errorf("--iperf3: %w", err)}
				}
			}
			o := bench.Options{Duration: duration, Warm: warm, Rounds: rounds, Progress: os.Stderr, Iperf3: useIperf3,
				UDPBatch: udpBatch, UDPSenders: udpSenders}
			if quick {
				o.Cases = bench.QuickCases
				if !cmd.Flags().Changed("duration") {
					o.Duration = time.Second
				}
				if !cmd.Flags().Changed("warm") {
					o.Warm = 300 * time.Millisecond
				}
			} else {
				o.Cases = bench.FullCases()
			}
			if cases != "" {
				o.Cases = strings.Split(cases, ",")
			}
			sel, err := bench.SelectCases(o.Cases)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			var notes []string
			ovs := false
			if withOVS {
				if err := bench.OVSAvailable(); err != nil {
					msg := fmt.Sprintf("--with-ovs: %v; skipping Open vSwitch", err)
					fmt.Fprintln(os.Stderr, msg)
					notes = append(notes, msg)
				} else {
					ovs = true
				}
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			tune := func(r *bench.TapswitchRun) {
				r.Queues, r.Batch, r.Spin, r.SpinCPU, r.TxQueueLen = queues, batch, spin, spinCPU, txqlen
				if cmd.Flags().Changed("nice") {
					r.Nice = &nice
				}
			}
			topos, cleanup, err := buildTopologies(ctx, exe, bench.PodsNeeded(sel), inProcess || profile != "", ovs, tune)
			defer func() {
				if cerr := cleanup(); cerr != nil {
					fmt.Fprintln(os.Stderr, "tapswitch bench: cleanup:", cerr)
				}
			}()
			if err != nil {
				return err
			}
			if profile != "" {
				f, err := os.Create(profile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			var rep *bench.Report
			// The traffic engine's goroutines carry role=traffic, so that a
			// profile separates them from the daemon's readers
			// (go tool pprof -tagignore role=traffic).
			pprof.Do(ctx, pprof.Labels("role", "traffic"), func(ctx context.Context) {
				rep, err = bench.Run(ctx, topos, o)
			})
			if rep != nil {
				rep.Command = "tapswitch " + strings.Join(os.Args[1:], " ")
				rep.Notes = append(rep.Notes, notes...)
				if inProcess || profile != "" {
					rep.Notes = append(rep.Notes, "tapswitch ran in-process: its \"switch CPU\" includes the traffic engine")
				}
			}
			if err != nil {
				if rep != nil && len(rep.Results) > 0 {
					rep.WriteTable(os.Stderr)
				}
				return err
			}
			if plotFile != "" {
				if err := bench.Plot(rep, plotFile); err != nil {
					return err
				}
				fmt.Fprintln(os.Stderr, "chart written to", plotFile)
			}
			if output == "json" {
				return rep.WriteJSON(cmd.OutOrStdout())
			}
			return rep.WriteTable(cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.BoolVar(&quick, "quick", false, "the short set ("+strings.Join(bench.QuickCases, ",")+"), 1 s per case: under a minute without --with-ovs")
	f.StringVar(&cases, "cases", "", "comma-separated cases to run (default: all; with --quick the quick set)")
	f.DurationVar(&duration, "duration", 3*time.Second, "measured time per case, system and round")
	f.DurationVar(&warm, "warm", time.Second, "unmeasured start of each TCP case (slow start, ARP)")
	f.IntVar(&rounds, "rounds", 3, "rounds per case; each round runs every system once (A B A B ...)")
	f.StringVarP(&output, "output", "o", "table", "output format: table or json")
	f.StringVar(&plotFile, "plot", "", "write a PNG bar chart comparing the systems per case to FILE")
	f.BoolVar(&withOVS, "with-ovs", false, "also measure Open vSwitch's userspace datapath over TAPs if ovs-vswitchd runs (skipped with a message otherwise)")
	f.BoolVar(&useIperf3, "iperf3", false, "run tcp1, tcp4, udp64 and udp64pdr with iperf3 instead of the Go traffic engine, to cross-check it (whole seconds; `make iperf3` installs it)")
	f.IntVar(&udpBatch, "udp-batch", bench.DefaultUDPBatch, "datagrams per sendmmsg(2) call of the udp64pdr senders (1: one per call)")
	f.IntVar(&udpSenders, "udp-senders", 1, "sending sockets, each with its own goroutine and receiving socket, per udp64pdr flow")
	f.BoolVar(&inProcess, "in-process", false, "run the tapswitch daemon inside this process instead of as a child")
	f.StringVar(&profile, "cpuprofile", "", "write a CPU profile of this process to FILE (implies --in-process)")
	f.IntVar(&queues, "queues", 0, "TAP queues per pod for tapswitch (0: the daemon's default)")
	f.IntVar(&batch, "batch", 0, "frames per read for tapswitch (0: the daemon's default)")
	f.IntVar(&txqlen, "tx-queue-len", 0, "frames each tapswitch TAP holds before dropping (0: the daemon's default)")
	f.DurationVar(&spin, "spin", 0, "> 0: tapswitch's one poller reads every TAP queue and polls this long after the last frame before sleeping (0: the daemon's default, reader goroutines)")
	f.IntVar(&spinCPU, "spin-cpu", -1, "pin tapswitch's poller (--spin) to this CPU (-1: not pinned)")
	f.IntVar(&nice, "nice", 0, "the tapswitch daemon's nice value (default: the daemon's, 0; not with --in-process)")
	return cmd
}

// buildTopologies builds the bridge, the tapswitch and, with ovs, the Open
// vSwitch topology with n pods each. cleanup undoes whatever was built, also
// after an error.
func buildTopologies(ctx context.Context, exe string, n int, inProcess, ovs bool, tune func(*bench.TapswitchRun)) ([]bench.Topology, func() error, error) {
	prefix := bench.NewPrefix()
	var topos []bench.Topology
	cleanup := func() error {
		var errs []error
		for i := len(topos) - 1; i >= 0; i-- {
			errs = append(errs, topos[i].Close())
		}
		errs = append(errs, bench.Sweep(prefix))
		return errors.Join(errs...)
	}
	bsub, err := testenv.FreeSubnet(252)
	if err != nil {
		return nil, cleanup, err
	}
	tsub, err := testenv.FreeSubnet(251)
	if err != nil {
		return nil, cleanup, err
	}
	var osub netip.Prefix
	if ovs {
		if osub, err = testenv.FreeSubnet(253); err != nil {
			return nil, cleanup, err
		}
		fmt.Fprintf(os.Stderr, "building %d pods behind a kernel bridge (%s), tapswitch (%s) and Open vSwitch's userspace datapath (%s), prefix %s\n", n, bsub, tsub, osub, prefix)
	} else {
		fmt.Fprintf(os.Stderr, "building %d pods behind a kernel bridge (%s) and behind tapswitch (%s), prefix %s\n", n, bsub, tsub, prefix)
	}
	t0 := time.Now()
	br, err := bench.BuildBridge(prefix, bsub, n)
	if err != nil {
		return nil, cleanup, err
	}
	topos = append(topos, br)
	run, err := bench.NewTapswitchRun(prefix, tsub)
	if err != nil {
		return nil, cleanup, err
	}
	tune(run)
	var ts bench.Topology
	if inProcess {
		ts, err = buildInProcess(ctx, run, n)
	} else {
		ts, err = bench.BuildTapswitch(ctx, exe, run, n)
	}
	if err != nil {
		run.Cleanup()
		return nil, cleanup, err
	}
	topos = append(topos, ts)
	if ovs {
		o, err := bench.BuildOVS(ctx, prefix, osub, n)
		if err != nil {
			return nil, cleanup, err
		}
		topos = append(topos, o)
	}
	fmt.Fprintf(os.Stderr, "built in %.1fs\n", time.Since(t0).Seconds())
	return topos, cleanup, nil
}

// inProc is the tapswitch topology with the daemon in this process.
type inProc struct {
	run    *bench.TapswitchRun
	d      *daemon.Daemon
	pods   []bench.Pod
	closed bool
}

func buildInProcess(ctx context.Context, run *bench.TapswitchRun, n int) (_ *inProc, err error) {
	cfg, err := config.Parse(run.YAML(), "bench")
	if err != nil {
		return nil, err
	}
	d, err := daemon.New(cfg, nil)
	if err != nil {
		return nil, err
	}
	t := &inProc{run: run, d: d}
	if err := d.Start(ctx); err != nil {
		return nil, errors.Join(err, t.Close())
	}
	for i := range n {
		if _, err := d.AddPod(ctx, api.PodSpec{Name: run.PodName(i), IP: run.PodCIDR(i)}); err != nil {
			return nil, errors.Join(err, t.Close())
		}
		t.pods = append(t.pods, run.Pod(i))
	}
	return t, nil
}

func (t *inProc) System() string    { return "tapswitch" }
func (t *inProc) Pods() []bench.Pod { return t.pods }
func (t *inProc) SwitchPID() int    { return os.Getpid() }
func (t *inProc) Close() error {
	if t.closed {
		return nil
	}
	t.closed = true
	return errors.Join(t.d.Close(true), t.run.Cleanup())
}
