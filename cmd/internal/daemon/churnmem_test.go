package daemon_test

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/cmd/internal/nodetest"
)

// vmRSS is this process's resident set in KiB.
func vmRSS(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	return 0
}

// TestPodChurnMemory adds and deletes pods in rounds (30 pods, 3 rounds;
// TAPSWITCH_CHURN=PODSxROUNDS for more, as in "100x3") in a daemon in
// this process, and after each round collects garbage and returns free
// pages to the kernel: the live heap must come back to where it was after
// the first round, and the goroutine count to its baseline. RSS measured
// without that step grows over rounds because the runtime keeps freed
// heap for reuse and returns it gradually; that is retained memory, and
// this test tells it apart from a leak.
func TestPodChurnMemory(t *testing.T) {
	pods, rounds := 30, 3
	if v := os.Getenv("TAPSWITCH_CHURN"); v != "" {
		if _, err := fmt.Sscanf(v, "%dx%d", &pods, &rounds); err != nil || pods < 1 || pods > 200 || rounds < 2 {
			t.Fatalf("TAPSWITCH_CHURN=%q: want PODSxROUNDS, 1-200 pods, 2 or more rounds", v)
		}
	}
	e := nodetest.New(t)
	e.Start()
	settle := func() runtime.MemStats {
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms
	}
	base := settle()
	goroutines := runtime.NumGoroutine()
	t.Logf("start: heap alloc %d KiB, heap in use %d KiB, RSS %d KiB, %d goroutines", base.HeapAlloc>>10, base.HeapInuse>>10, vmRSS(t), goroutines)
	var first runtime.MemStats
	for r := 1; r <= rounds; r++ {
		for i := 0; i < pods; i++ {
			if _, err := e.Client.AddPod(bg, api.PodSpec{Name: fmt.Sprintf("m%d", i), IP: e.CIDR(10 + i)}); err != nil {
				t.Fatal(err)
			}
		}
		var full runtime.MemStats
		runtime.ReadMemStats(&full)
		rssFull := vmRSS(t)
		for i := 0; i < pods; i++ {
			if err := e.Client.DeletePod(bg, fmt.Sprintf("m%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		var unsettled runtime.MemStats
		runtime.ReadMemStats(&unsettled)
		rssUnsettled := vmRSS(t)
		ms := settle()
		t.Logf("round %d: with %d pods heap in use %d KiB, RSS %d KiB; deleted: heap in use %d KiB, RSS %d KiB; after GC and FreeOSMemory: heap alloc %d KiB, in use %d KiB, RSS %d KiB, %d goroutines",
			r, pods, full.HeapInuse>>10, rssFull, unsettled.HeapInuse>>10, rssUnsettled, ms.HeapAlloc>>10, ms.HeapInuse>>10, vmRSS(t), runtime.NumGoroutine())
		if r == 1 {
			first = ms
			continue
		}
		// 1 MiB of slack: the race detector's and the test logger's own
		// allocations come and go between rounds.
		if ms.HeapAlloc > first.HeapAlloc+1<<20 {
			t.Errorf("round %d: live heap %d KiB after the pods were deleted, %d KiB after round 1: growing", r, ms.HeapAlloc>>10, first.HeapAlloc>>10)
		}
	}
	if g := runtime.NumGoroutine(); g > goroutines+2 {
		t.Errorf("%d goroutines after the rounds, %d before", g, goroutines)
	}
}
