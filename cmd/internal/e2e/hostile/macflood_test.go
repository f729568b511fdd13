package hostile

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/cmd/internal/daemon"
	"github.com/tapswitch/tapswitch/cmd/internal/nodetest"
	"github.com/tapswitch/tapswitch/fdb"
	"github.com/tapswitch/tapswitch/internal/podnet"
	"github.com/tapswitch/tapswitch/internal/testenv"
)

// flooder writes 64-byte frames with a random unicast source MAC out of a
// pod's eth0 as fast as one goroutine can, until stopped. The destination
// is a random unknown unicast MAC, as macof's, so every frame floods; or,
// with a fixed dst, that MAC.
type flooder struct {
	stop func()
	wg   sync.WaitGroup
	sent atomic.Uint64
	errs atomic.Uint64
}

func flood(w *podnet.FrameWriter, dst *fdb.MAC) *flooder {
	ctx, cancel := context.WithCancel(context.Background())
	fl := &flooder{stop: cancel}
	fl.wg.Add(1)
	go func() {
		defer fl.wg.Done()
		r := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
		f := ether(fdb.MAC{}, fdb.MAC{}, 0x0800, make([]byte, 46))
		for ctx.Err() == nil {
			for i := 0; i < 256; i++ {
				// Locally administered unicast: 02:xx:..., never a pod's
				// 02:00:<ip> address, since byte 1 is never 0.
				binary.BigEndian.PutUint64(f[0:], r.Uint64()|0x0201<<48)
				binary.BigEndian.PutUint64(f[4:], r.Uint64()) // source in f[6:12]
				f[0], f[6] = 0x02, 0x02
				f[1] |= 1
				f[7] |= 1
				if dst != nil {
					copy(f, dst[:])
				}
				if w.Write(f) != nil {
					fl.errs.Add(1)
				} else {
					fl.sent.Add(1)
				}
			}
		}
	}()
	return fl
}

// Stop ends the flood and returns the frames sent.
func (fl *flooder) Stop() uint64 {
	fl.stop()
	fl.wg.Wait()
	return fl.sent.Load()
}

// learned counts the learned (not static or local) entries.
func learned(d *daemon.Daemon) int {
	n := 0
	for _, en := range d.Switch().FDB().Entries() {
		if en.Kind == fdb.Learned {
			n++
		}
	}
	return n
}

// TestMACFlood has pod "evil" send frames with random source MACs as fast
// as it can for two seconds, into a table limited to 1024 learned entries,
// under both policies. The table never holds more than its limit nor
// allocates past a bounded array, the entries of pods a and b (learned
// before the flood) stay on their ports, and a still reaches b. Under
// evict-fair a pod arriving after the flood is learned (the flooder's own
// entries make room); under stop-learning it is refused and reached by
// flooding. RSS and heap before and after are logged.
func TestMACFlood(t *testing.T) {
	const limit = 1024
	for _, policy := range []string{"evict-fair", "stop-learning"} {
		t.Run(policy, func(t *testing.T) {
			e := nodetest.New(t)
			e.Cfg.FDB.Limit = limit
			e.Cfg.FDB.Policy = policy
			d := e.Start()
			a, b := e.AddQuietPod("a", 2), e.AddQuietPod("b", 3)
			e.AddQuietPod("evil", 4)
			e.MustPing(t, "a", 3, 2)
			tab := d.Switch().FDB()
			rss0, heap0 := rss(t), testenv.HeapKiB()

			fl := flood(writer(t, e, "evil", false), nil)
			// While the flood runs: watch the table's size, and ping.
			maxLearned := 0
			var during podnet.PingResult
			var perr error
			pingDone := make(chan struct{})
			go func() {
				defer close(pingDone)
				during, perr = podnet.Ping(bg, e.Netns("a"), e.IP(3), podnet.PingOptions{Count: 20, Interval: 75 * time.Millisecond, Timeout: time.Second})
			}()
			deadline := time.Now().Add(2 * time.Second)
			for time.Now().Before(deadline) {
				maxLearned = max(maxLearned, learned(d))
				time.Sleep(50 * time.Millisecond)
			}
			<-pingDone
			sent := fl.Stop()
			st := tab.Stats()
			rss1, heap1 := rss(t), testenv.HeapKiB()
			t.Logf("%s: flood of %d frames (%.0f kframes/s); learned entries at most %d (limit %d); table: %d entries, %d slots, learned %d, evicted %d, refused %d",
				policy, sent, float64(sent)/2e3, maxLearned, limit, st.Entries, st.Capacity, st.Learned, st.Evicted, st.Refused)
			t.Logf("%s: RSS %d -> %d KiB (%+d), Go heap in use %d -> %d KiB (%+d); ping a -> b during the flood: %s",
				policy, rss0, rss1, rss1-rss0, heap0, heap1, int64(heap1)-int64(heap0), during)
			if perr != nil {
				t.Errorf("ping during the flood: %v", perr)
			}
			if sent < 10*limit {
				t.Fatalf("only %d flood frames sent: not a flood", sent)
			}
			if maxLearned > limit || learned(d) > limit {
				t.Errorf("learned entries reached %d, over the limit %d", max(maxLearned, learned(d)), limit)
			}
			if st.Capacity > 4*limit {
				t.Errorf("table grew to %d slots for a limit of %d", st.Capacity, limit)
			}
			switch policy {
			case "evict-fair":
				if st.Evicted == 0 {
					t.Error("nothing evicted under the flood")
				}
			case "stop-learning":
				if st.Refused == 0 {
					t.Error("nothing refused under the flood")
				}
			}
			keepsEntries(t, d, a, b)
			e.MustPing(t, "a", 3, 5)
			// No more than the limit's worth of memory stays: the
			// flood's garbage is collectable. A loose bound, for -race.
			if grow := int64(heap1) - int64(heap0); grow > 64<<10 {
				t.Errorf("Go heap grew by %d KiB under the flood", grow)
			}

			// A pod that arrives after the flood.
			c := e.AddQuietPod("c", 5)
			cm := nodetest.MAC(t, c)
			e.MustPing(t, "c", 2, 3)
			refused0 := st.Refused
			cid, _ := d.Switch().PortByName("c")
			p, ok := tab.Lookup(1, cm[:], d.Switch().Now())
			switch policy {
			case "evict-fair":
				if !ok || p != cid {
					t.Errorf("newcomer c not learned under evict-fair: %d %v", p, ok)
				}
			case "stop-learning":
				if ok {
					t.Errorf("newcomer c learned on port %d of a full stop-learning table", p)
				}
				if tab.Stats().Refused <= refused0 {
					t.Error("newcomer c's frames not counted as refused")
				}
			}
		})
	}
}
