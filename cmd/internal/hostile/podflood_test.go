package hostile

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/cmd/internal/nodetest"
	"github.com/tapswitch/tapswitch/cmd/internal/podnet"
	"github.com/tapswitch/tapswitch/tap"
)

// floodEnv, when set, makes the test binary a flooder instead: it floods
// random source MACs out of eth0 of the namespace the variable names until
// it is killed. BenchmarkUnicastUnderPodFlood runs it as a separate process
// so that a CPU limit can be put on it, as on a pod.
const floodEnv = "TAPSWITCH_TEST_FLOODER"

func TestMain(m *testing.M) {
	if ns := os.Getenv(floodEnv); ns != "" {
		w, err := OpenWriter(ns, "eth0", false)
		if err != nil {
			fmt.Fprintln(os.Stderr, "flooder:", err)
			os.Exit(2)
		}
		flood(w, nil)
		select {}
	}
	os.Exit(m.Run())
}

// cpuCgroup makes a cgroup (v1 cpu controller) limited to cpus CPUs and
// removes it in the cleanup; it skips when the controller is not there.
func cpuCgroup(b *testing.B, cpus float64) string {
	root := "/sys/fs/cgroup/cpu"
	if _, err := os.Stat(filepath.Join(root, "cpu.cfs_quota_us")); err != nil {
		b.Skipf("no cgroup v1 cpu controller at %s: %v", root, err)
	}
	dir := filepath.Join(root, fmt.Sprintf("tapswitch-flood-%06x", rand.Uint32()&0xffffff))
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		for range 50 { // the killed process leaves the group shortly
			if os.Remove(dir) == nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		b.Errorf("cgroup %s not removed", dir)
	})
	quota := strconv.Itoa(int(cpus * 100000))
	for f, v := range map[string]string{"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": quota} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(v), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// BenchmarkUnicastUnderPodFlood is BenchmarkUnicastUnderMACFlood with the
// flooder as a pod would be: its own process, limited to half a CPU
// (limits.cpu: 500m), sending random source and destination MACs as fast
// as that lets it, against the mitigations: storm control (1000 floods/s)
// and a per-pod read limit (rx_pps 30000). Target under evict-fair: ratio
// >= 0.90.
//
//	sudo go test -run '^$' -bench UnicastUnderPodFlood -benchtime 2x ./cmd/internal/hostile
func BenchmarkUnicastUnderPodFlood(b *testing.B) {
	for _, bc := range []struct {
		name      string
		storm, rx int
	}{
		{"evict-fair", 0, 0},
		{"evict-fair+storm-control", 1000, 0},
		{"evict-fair+rx-limit", 0, 30000},
		{"evict-fair+storm-control+rx-limit", 1000, 30000},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := nodetest.New(b)
			e.Cfg.FDB.Limit = 1024
			e.Cfg.FDB.Policy = "evict-fair"
			e.Cfg.Switch.StormPPS = bc.storm
			e.Cfg.RxPPS = bc.rx
			d := e.Start()
			e.AddQuietPod("a", 2)
			e.AddQuietPod("b", 3)
			e.AddQuietPod("evil", 4)
			mustPing(b, e, "a", 3, 2)
			cg := cpuCgroup(b, 0.5)
			const size = 512 << 20
			transfer := func() podnet.TransferResult {
				r, err := podnet.Transfer(bg, e.Netns("a"), e.Netns("b"), e.IP(3), size)
				if err != nil {
					b.Fatal(err)
				}
				return r
			}
			rx := func() uint64 { return ports(d.Switch())["evil"].Counters.RxFrames }
			transfer()
			var base, under, frames, secs float64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				base += transfer().Rate()
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), floodEnv+"="+tap.NetNSPath(e.Netns("evil")))
				cmd.Stderr = os.Stderr
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
					cmd.Process.Kill()
					b.Fatal(err)
				}
				time.Sleep(200 * time.Millisecond) // the flood under way
				n0 := rx()
				r := transfer()
				n1 := rx()
				cmd.Process.Kill()
				cmd.Wait()
				under += r.Rate()
				frames += float64(n1 - n0)
				secs += r.Duration.Seconds()
			}
			b.StopTimer()
			base, under = base/float64(b.N), under/float64(b.N)
			b.ReportMetric(base/1e9, "base-Gbit/s")
			b.ReportMetric(under/1e9, "flood-Gbit/s")
			b.ReportMetric(under/base, "ratio")
			b.ReportMetric(frames/secs/1e3, "flood-kframes/s")
		})
	}
}
