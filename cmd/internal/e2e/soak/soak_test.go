// Package soak runs a node under mixed traffic and pod churn for a while
// and checks that it does not grow: goroutines, fds, heap and RSS.
package soak

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/bench"
	"github.com/tapswitch/tapswitch/cmd/internal/nodetest"
	"github.com/tapswitch/tapswitch/internal/podnet"
	"github.com/tapswitch/tapswitch/internal/testenv"
	"github.com/tapswitch/tapswitch/netns"
)

// soakDuration is how long TestSoak runs: TAPSWITCH_SOAK (a Go duration,
// `make soak` sets 10m), else 15 s, the short version the default test run
// and CI use.
func soakDuration(t *testing.T) time.Duration {
	if s := os.Getenv("TAPSWITCH_SOAK"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("TAPSWITCH_SOAK=%q: %v", s, err)
		}
		return d
	}
	if testing.Short() {
		t.Skip("soak: skipped in -short mode")
	}
	return 15 * time.Second
}

type sample struct {
	goroutines, fds int
	heapKiB         uint64
	rssKiB          int
}

func (s sample) String() string {
	return fmt.Sprintf("%d goroutines, %d fds, heap %d KiB, RSS %d KiB", s.goroutines, s.fds, s.heapKiB, s.rssKiB)
}

func take(t *testing.T) sample {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	r, err := bench.ReadRSS(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return sample{goroutines: runtime.NumGoroutine(), fds: len(ents), heapKiB: testenv.HeapKiB(), rssKiB: int(r.Now)}
}

// TestSoak runs mixed traffic (TCP transfers between two pods, checked by
// SHA-256, and pings) while pods are added and removed every second, and
// samples goroutines, fds, heap and RSS: after the warm-up they must not
// grow. The default run is 15 s; `make soak` runs 10 minutes.
func TestSoak(t *testing.T) {
	dur := soakDuration(t)
	e := nodetest.New(t)
	e.Start()
	e.AddQuietPod("a", 2)
	e.AddQuietPod("b", 3)
	e.MustPing(t, "a", 3, 2)

	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var wg sync.WaitGroup
	var transfers, mismatches int
	wg.Add(1)
	go func() { // bulk traffic a -> b, checked end to end
		defer wg.Done()
		for ctx.Err() == nil {
			r, err := podnet.Transfer(ctx, e.Netns("a"), e.Netns("b"), e.IP(3), 16<<20)
			if err != nil {
				if ctx.Err() == nil {
					t.Errorf("transfer: %v", err)
				}
				return
			}
			transfers++
			if !r.Match() {
				mismatches++
			}
		}
	}()

	churn := func(i int) {
		name := fmt.Sprintf("c%d", i%4)
		e.AddQuietPod(name, 10+i%4)
		if _, err := podnet.Ping(context.Background(), e.Netns(name), e.IP(2), podnet.PingOptions{Count: 2, Interval: 10 * time.Millisecond, Timeout: time.Second}); err != nil {
			t.Errorf("ping from %s: %v", name, err)
		}
		if err := e.Client.DeletePod(context.Background(), name); err != nil {
			t.Errorf("pod del %s: %v", name, err)
		}
		if err := netns.DeleteNamed(e.Netns(name)); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
	}
	for i := range 4 { // warm-up: every pod name once
		churn(i)
	}
	base := take(t)
	t.Logf("after warm-up: %s", base)
	cycles := 0
	for i := 4; ctx.Err() == nil; i++ {
		churn(i)
		cycles++
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	wg.Wait()
	// Let closed connections and exited readers wind down.
	var end sample
	ok := testenv.Eventually(10*time.Second, func() bool {
		end = take(t)
		return end.goroutines <= base.goroutines+5 && end.fds <= base.fds+5 && end.heapKiB <= base.heapKiB+16<<10
	})
	t.Logf("after %v: %d pod add/del cycles, %d transfers of 16 MiB (%d mismatched); %s", dur, cycles, transfers, mismatches, end)
	if mismatches > 0 {
		t.Errorf("%d transfers arrived altered", mismatches)
	}
	if transfers == 0 {
		t.Error("no transfer completed")
	}
	if !ok {
		t.Errorf("grew during the soak: from %s to %s", base, end)
	}
}
