package hostile

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/bench"
	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/cmd/internal/nodetest"
	"github.com/tapswitch/tapswitch/internal/podnet"
	"github.com/tapswitch/tapswitch/netns"
)

// childEnv, when set, makes the test binary one pod's workload instead of a
// test run, so that it can be put in a cgroup of its own with a CPU limit,
// as a pod's containers are. Its value is ROLE:NETNS-PATH[:ADDR]:
//
//	flood  floods random source MACs out of eth0 between "start" and "stop",
//	       and then prints the frames it offered; or, after "spin", only
//	       burns its CPU
//	recv   listens on ADDR, prints the port; answers each stream with its SHA-256
//	send   for each "HOST:PORT SIZE" line, streams SIZE bytes and prints the time
//
// A child waits for "go" on stdin before it does anything, so that it is in
// its cgroup from its first frame, and exits when stdin closes, so that a
// parent that dies (even by SIGKILL) leaves no flood running.
const childEnv = "TAPSWITCH_TEST_CHILD"

func TestMain(m *testing.M) {
	if v := os.Getenv(childEnv); v != "" {
		if err := runChild(v); err != nil {
			fmt.Fprintln(os.Stderr, "child", v+":", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runChild(spec string) error {
	role, ns, _ := strings.Cut(spec, ":")
	ns, addr, _ := strings.Cut(ns, ":")
	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() || in.Text() != "go" {
		return errors.New("no go from the parent")
	}
	switch role {
	case "flood":
		w, err := podnet.OpenFrameWriter(ns, "eth0", podnet.FrameOptions{BypassQdisc: true})
		if err != nil {
			return err
		}
		var fl *flooder
		var spin atomic.Bool
		for in.Scan() {
			switch in.Text() {
			case "start":
				fl = flood(w, nil)
				fmt.Println("ok")
			case "spin":
				spin.Store(true)
				go func() {
					for spin.Load() {
					}
				}()
				fmt.Println("ok")
			case "stop":
				if spin.Swap(false) {
					fmt.Println(0)
					continue
				}
				// Writes the full TAP queue refused count too: they
				// are frames the flooder offered.
				fmt.Println(fl.Stop() + fl.errs.Load())
			}
		}
	case "recv":
		ln, err := podnet.Listen(context.Background(), ns, "tcp4", net.JoinHostPort(addr, "0"))
		if err != nil {
			return err
		}
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go recvStream(c)
			}
		}()
		for in.Scan() {
		}
	case "send":
		for in.Scan() {
			dst, size, _ := strings.Cut(in.Text(), " ")
			n, _ := strconv.ParseInt(size, 10, 64)
			took, err := sendStream(ns, dst, n)
			if err != nil {
				fmt.Println("error:", err)
				continue
			}
			fmt.Println(took.Nanoseconds())
		}
	default:
		return fmt.Errorf("unknown role %q", role)
	}
	return in.Err()
}

// recvStream hashes what c carries until the sender closes its side, and
// answers with the hash.
func recvStream(c net.Conn) {
	defer c.Close()
	if _, sum, err := podnet.ReceiveStream(c); err == nil {
		c.Write(sum[:])
	}
}

// sendStream streams size bytes of pseudo-random data from netns ns to dst,
// as podnet.Transfer does but with its receiver in another process: the
// time runs from the first byte sent to the receiver's hash of the last,
// one round trip more than podnet's, and the hashes must match.
func sendStream(ns, dst string, size int64) (time.Duration, error) {
	conn, err := podnet.Dial(context.Background(), ns, "tcp4", dst)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	sent, err := podnet.SendStream(conn, size)
	if err != nil {
		return 0, err
	}
	var got [sha256.Size]byte
	if _, err := io.ReadFull(conn, got[:]); err != nil {
		return 0, fmt.Errorf("receiver's hash: %w", err)
	}
	took := time.Since(sent.Start)
	if got != sent.SHA {
		return 0, fmt.Errorf("sha256 differs: sent %x, received %x", sent.SHA, got)
	}
	return took, nil
}

// child is a running workload process (childEnv) in its cgroup.
type child struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

// startChild starts the test binary as role in cgroup cg (none when
// empty); the cleanup ends it, by closing its stdin and then by SIGKILL.
func startChild(t testing.TB, cg, spec string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+spec)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	t.Cleanup(func() {
		in.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	if cg != "" {
		if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := io.WriteString(in, "go\n"); err != nil {
		t.Fatal(err)
	}
	return c
}

// read is the child's next line of output.
func (c *child) read(t testing.TB) string {
	t.Helper()
	if !c.out.Scan() {
		t.Fatalf("child %s: no answer (%v)", c.cmd.Env[len(c.cmd.Env)-1], c.out.Err())
	}
	return c.out.Text()
}

// call sends the child one command line and returns its answer.
func (c *child) call(t testing.TB, cmd string) string {
	t.Helper()
	if _, err := io.WriteString(c.in, cmd+"\n"); err != nil {
		t.Fatal(err)
	}
	return c.read(t)
}

// cpuCgroup makes a cgroup (v1 cpu controller) limited to cpus CPUs and
// removes it in the cleanup; it skips when the controller is not there.
// Processes are put in it with startChild, whose cleanup (registered
// later, so run first) ends them before the group is removed.
func cpuCgroup(t testing.TB, role string, cpus float64) string {
	t.Helper()
	root := "/sys/fs/cgroup/cpu"
	if _, err := os.Stat(filepath.Join(root, "cpu.cfs_quota_us")); err != nil {
		t.Skipf("no cgroup v1 cpu controller at %s: %v", root, err)
	}
	dir := filepath.Join(root, fmt.Sprintf("tapswitch-%s-%06x", role, rand.Uint32()&0xffffff))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 100 { // an ended process leaves the group shortly
			if os.Remove(dir) == nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Errorf("cgroup %s not removed", dir)
	})
	quota := strconv.Itoa(int(cpus * 100000))
	for _, kv := range [][2]string{{"cpu.cfs_period_us", "100000"}, {"cpu.cfs_quota_us", quota}} {
		if err := os.WriteFile(filepath.Join(dir, kv[0]), []byte(kv[1]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// addLabeledPod is nodetest's AddQuietPod under the pprof label pod=NAME:
// the pod's reader goroutines inherit it, so that a CPU profile of the
// test process splits the daemon's time by the port it read from (go tool
// pprof -tagfocus pod=evil is the flood's cost).
func addLabeledPod(t testing.TB, e *nodetest.Env, name string, n int) api.Pod {
	t.Helper()
	var p api.Pod
	pprof.Do(bg, pprof.Labels("pod", name), func(ctx context.Context) {
		p = e.AddQuietPodContext(ctx, name, n)
	})
	return p
}

// CPU time where the benchmark can tell it apart, in seconds: the test
// process (the daemon, with the transfer's ends when they run in it), the
// ends' and the flooder's processes, and the machine's softirq and idle
// time. Softirq time is its own column because this kernel accounts it
// apart from the task it interrupted (IRQ time accounting): the kernel's
// receive path of a frame the daemon writes into a TAP, and so the victims'
// dropping of flooded frames, shows up there and not as the daemon's.
type cpuUse struct{ daemon, ends, flooder, softirq, idle float64 }

// procCPU is a process's user and system time; 0 once it has gone.
func procCPU(pid int) float64 {
	s, _ := bench.ProcCPU(pid)
	return s
}

func sampleCPU(ends []*child, flooder *child) cpuUse {
	c := cpuUse{daemon: procCPU(os.Getpid()), flooder: procCPU(flooder.cmd.Process.Pid)}
	for _, e := range ends {
		c.ends += procCPU(e.cmd.Process.Pid)
	}
	if m, err := bench.ReadCPUTimes(); err == nil {
		c.softirq = m.IRQ + m.SoftIRQ
		c.idle = m.Idle + m.IOWait
	}
	return c
}

// add adds the CPU used from a to b.
func (c *cpuUse) add(a, b cpuUse) {
	c.daemon += b.daemon - a.daemon
	c.ends += b.ends - a.ends
	c.flooder += b.flooder - a.flooder
	c.softirq += b.softirq - a.softirq
	c.idle += b.idle - a.idle
}

func (c cpuUse) String(secs float64) string {
	return fmt.Sprintf("daemon %.2f, softirq %.2f, ends %.2f, flooder %.2f, idle %.2f",
		c.daemon/secs, c.softirq/secs, c.ends/secs, c.flooder/secs, c.idle/secs)
}

// podFlood is one case: the mitigations against a flooding pod, storm
// control (floods/s per pod), a per-pod read limit (rx_pps) and the lock of
// each pod to its own source MAC (lock_pod_mac), or, with
// hog, the control: the "flooder" sends nothing and only burns the CPU its
// limit gives it, which is what any busy pod on the node may do. Its ratio
// is the best a flood that cost the switch nothing could reach.
type podFlood struct {
	name      string
	storm, rx int
	lock      bool
	hog       bool
}

var podFloodCases = []podFlood{
	{name: "evict-fair"},
	{name: "evict-fair+storm-control", storm: 1000},
	{name: "evict-fair+rx-limit", rx: 30000},
	{name: "evict-fair+storm-control+rx-limit", storm: 1000, rx: 30000},
	{name: "evict-fair+lock-pod-mac", lock: true},
	{name: "evict-fair+lock-pod-mac+rx-limit", lock: true, rx: 30000},
}

// BenchmarkUnicastUnderPodFlood is BenchmarkUnicastUnderMACFlood with the
// flooder as a pod would be: its own process, limited to half a CPU
// (limits.cpu: 500m), sending random source and destination MACs as fast
// as that lets it, against the mitigations. The TCP ends run in the test
// process beside the daemon, unlimited: the worst case, where the transfer
// alone takes the whole machine and the flooder's half CPU comes out of
// it. Target under evict-fair: ratio >= 0.90.
//
//	sudo flock /tmp/tapswitch-bench.lock go test -run '^$' -bench 'UnicastUnderPodFlood$' -benchtime 5x ./cmd/internal/hostile
func BenchmarkUnicastUnderPodFlood(b *testing.B) {
	for _, bc := range podFloodCases {
		b.Run(bc.name, func(b *testing.B) { benchPodFlood(b, bc, 0) })
	}
}

// BenchmarkUnicastUnderPodFloodProvisioned is the node as Kubernetes
// provisions it: every pod has a CPU limit and the limits add up to less
// than the machine. Sender, receiver and flooder are each a process in a
// cgroup of half a CPU; the daemon (the test process) has whatever the
// limits leave of the machine, and is not limited.
//
//	sudo flock /tmp/tapswitch-bench.lock go test -run '^$' -bench 'UnicastUnderPodFloodProvisioned' -benchtime 5x ./cmd/internal/hostile
func BenchmarkUnicastUnderPodFloodProvisioned(b *testing.B) {
	for _, bc := range append(podFloodCases, podFlood{name: "control:cpu-hog", hog: true}) {
		b.Run(bc.name, func(b *testing.B) { benchPodFlood(b, bc, 0.5) })
	}
}

// benchPodFlood measures a 512 MiB TCP transfer from pod a to pod b,
// undisturbed and while pod evil floods, in alternation (A B A B ...), and
// reports the medians, so that drift over the run (other load, the
// machine's clock) biases neither side. With endCPUs > 0 the transfer's
// ends are child processes limited to that many CPUs each; else they run
// in the test process. The flooder is always limited to half a CPU.
// Metrics besides the rates: the flood frames the switch read and the
// flooder sent per second, the learned entries at the end of each flood
// (the table's limit is 1024), and the test process's RSS (the daemon's,
// with endCPUs > 0) before the first flood and after the last.
func benchPodFlood(b *testing.B, bc podFlood, endCPUs float64) {
	e := nodetest.New(b)
	e.Cfg.FDB.Limit = 1024
	e.Cfg.FDB.Policy = "evict-fair"
	e.Cfg.Switch.StormPPS = bc.storm
	e.Cfg.RxPPS = bc.rx
	e.Cfg.Switch.LockPodMAC = bc.lock
	d := e.Start()
	addLabeledPod(b, e, "a", 2)
	addLabeledPod(b, e, "b", 3)
	addLabeledPod(b, e, "evil", 4)
	e.MustPing(b, "a", 3, 2)
	fl := startChild(b, cpuCgroup(b, "flood", 0.5), "flood:"+netns.PathOf(e.Netns("evil")))

	const size = 512 << 20
	var transfer func() time.Duration
	var ends []*child
	if endCPUs > 0 {
		recv := startChild(b, cpuCgroup(b, "recv", endCPUs), "recv:"+netns.PathOf(e.Netns("b"))+":"+e.IP(3).String())
		dst := net.JoinHostPort(e.IP(3).String(), recv.read(b))
		send := startChild(b, cpuCgroup(b, "send", endCPUs), "send:"+netns.PathOf(e.Netns("a")))
		ends = []*child{send, recv}
		transfer = func() time.Duration {
			out := send.call(b, fmt.Sprintf("%s %d", dst, size))
			ns, err := strconv.ParseInt(out, 10, 64)
			if err != nil {
				b.Fatalf("transfer a -> b: %s", out)
			}
			return time.Duration(ns)
		}
	} else {
		transfer = func() (took time.Duration) {
			pprof.Do(bg, pprof.Labels("role", "transfer"), func(context.Context) {
				r, err := podnet.Transfer(bg, e.Netns("a"), e.Netns("b"), e.IP(3), size)
				if err != nil {
					b.Fatal(err)
				}
				took = r.Duration
			})
			return took
		}
	}
	gbits := func(took time.Duration) float64 { return size * 8 / took.Seconds() / 1e9 }
	rxEvil := func() uint64 { return ports(d.Switch())["evil"].Counters.RxFrames }

	transfer() // warm-up: connections, ARP, the table
	rss0 := rss(b)
	var base, under []float64
	var read, sent uint64
	var baseSecs, readSecs, floodSecs float64
	var baseUse, floodUse cpuUse
	maxLearned := 0
	for b.Loop() {
		c0 := sampleCPU(ends, fl)
		took := transfer()
		baseUse.add(c0, sampleCPU(ends, fl))
		base = append(base, gbits(took))
		baseSecs += took.Seconds()

		start := time.Now()
		fl.call(b, map[bool]string{false: "start", true: "spin"}[bc.hog])
		time.Sleep(200 * time.Millisecond) // the flood under way
		n0, c0 := rxEvil(), sampleCPU(ends, fl)
		took = transfer()
		n1, c1 := rxEvil(), sampleCPU(ends, fl)
		maxLearned = max(maxLearned, learned(d))
		n, err := strconv.ParseUint(fl.call(b, "stop"), 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		floodUse.add(c0, c1)
		under = append(under, gbits(took))
		read += n1 - n0
		readSecs += took.Seconds()
		sent += n
		floodSecs += time.Since(start).Seconds()
	}
	b.StopTimer()
	rss1 := rss(b)
	b.ReportMetric(bench.Median(base), "base-Gbit/s")
	b.ReportMetric(bench.Median(under), "flood-Gbit/s")
	b.ReportMetric(bench.Median(under)/bench.Median(base), "ratio")
	b.ReportMetric(float64(read)/readSecs/1e3, "read-kframes/s")
	b.ReportMetric(float64(sent)/floodSecs/1e3, "sent-kframes/s")
	b.ReportMetric(float64(maxLearned), "learned-max")
	b.ReportMetric(float64(rss0)/1024, "rss0-MiB")
	b.ReportMetric(float64(rss1)/1024, "rss1-MiB")
	b.Logf("Gbit/s: undisturbed %.2f, flooded %.2f", base, under)
	b.Logf("CPUs undisturbed: %s", baseUse.String(baseSecs))
	b.Logf("CPUs flooded:     %s", floodUse.String(readSecs))
	// The flood's cost to the switch: both phases moved the same bytes, so
	// the daemon and softirq CPU time the flooded phase took beyond the
	// undisturbed one is the flood's (to the extent that a byte of the
	// transfer costs the same in both).
	extra := floodUse.daemon + floodUse.softirq - baseUse.daemon - baseUse.softirq
	b.Logf("flood frames read: %d in all, %d while measured; daemon+softirq CPU they added: %.2f s = %.2f us per frame",
		rxEvil(), read, extra, extra/float64(max(read, 1))*1e6)
}
