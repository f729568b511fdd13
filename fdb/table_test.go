package fdb

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func m(i int) []byte { return []byte{0x02, 0, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)} }

func newTable(t testing.TB, mod func(*Config), ports ...PortID) *Table {
	t.Helper()
	cfg := DefaultConfig()
	if mod != nil {
		mod(&cfg)
	}
	tb, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ports {
		if err := tb.AddPort(p, 0); err != nil {
			t.Fatal(err)
		}
	}
	return tb
}

const sec = int64(time.Second)

func TestLearnInsertRefreshMove(t *testing.T) {
	tb := newTable(t, nil, 1, 2)
	if r := tb.Learn(1, m(1), 1, sec); r != Inserted {
		t.Fatalf("first learn: %v", r)
	}
	if r := tb.Learn(1, m(1), 1, 2*sec); r != Refreshed {
		t.Fatalf("second learn: %v", r)
	}
	if r := tb.Learn(1, m(1), 2, 3*sec); r != Moved {
		t.Fatalf("learn on another port: %v", r)
	}
	if p, ok := tb.Lookup(1, m(1), 3*sec); !ok || p != 2 {
		t.Fatalf("lookup after move: %v %v", p, ok)
	}
	if _, ok := tb.Lookup(2, m(1), 3*sec); ok {
		t.Fatal("found in the wrong VLAN")
	}
	if tb.PortEntries(1) != 0 || tb.PortEntries(2) != 1 {
		t.Fatalf("per-port counts %d %d", tb.PortEntries(1), tb.PortEntries(2))
	}
	s := tb.Stats()
	if s.Learned != 1 || s.Moved != 1 || s.Entries != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestNeverLearnsGroupOrZero(t *testing.T) {
	tb := newTable(t, nil, 1)
	for _, a := range [][]byte{
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		{0x01, 0x00, 0x5e, 0, 0, 1},
		{0x33, 0x33, 0, 0, 0, 1},
		{0, 0, 0, 0, 0, 0},
	} {
		if r := tb.Learn(1, a, 1, sec); r != Ignored {
			t.Errorf("Learn(%x) = %v, want ignored", a, r)
		}
	}
	if tb.Len() != 0 {
		t.Fatalf("%d entries", tb.Len())
	}
}

func TestFlapping(t *testing.T) {
	tb := newTable(t, nil, 1, 2)
	sub := tb.Subscribe(16)
	tb.Learn(1, m(1), 1, sec)
	for i := range 4 {
		tb.Learn(1, m(1), PortID(2-i%2), sec+int64(i+1)*sec)
	}
	var flaps int
	for range 5 {
		if e := <-sub.C; e.Flapping {
			flaps++
		}
	}
	if flaps != 2 || tb.Stats().Flaps != 2 {
		t.Fatalf("flapping events %d, stats %d; want 2 (the 3rd and 4th move)", flaps, tb.Stats().Flaps)
	}
	// Moves far apart are migrations, not flapping.
	tb2 := newTable(t, nil, 1, 2)
	for i := range 5 {
		tb2.Learn(1, m(1), PortID(1+i%2), int64(i)*int64(time.Minute))
	}
	if tb2.Stats().Flaps != 0 {
		t.Fatal("slow moves reported as flapping")
	}
}

func TestAgeing(t *testing.T) {
	tb := newTable(t, func(c *Config) { c.Ageing = 10 * time.Second }, 1)
	tb.Learn(1, m(1), 1, 0)
	tb.Learn(1, m(2), 1, 5*sec)
	if err := tb.AddStatic(1, MACFrom(m(3)), 1, Static); err != nil {
		t.Fatal(err)
	}
	if _, ok := tb.Lookup(1, m(1), 10*sec-1); !ok {
		t.Fatal("expired a nanosecond early")
	}
	if _, ok := tb.Lookup(1, m(1), 10*sec); ok {
		t.Fatal("lookup returned an expired entry")
	}
	if n := tb.Age(12 * sec); n != 1 {
		t.Fatalf("aged %d, want 1", n)
	}
	if n := tb.Age(1000 * sec); n != 1 {
		t.Fatalf("aged %d, want 1", n)
	}
	if _, ok := tb.Lookup(1, m(3), 1e6*sec); !ok {
		t.Fatal("static entry aged")
	}
	if tb.Stats().Aged != 2 {
		t.Fatalf("stats %+v", tb.Stats())
	}
	never := newTable(t, func(c *Config) { c.Ageing = 0 }, 1)
	never.Learn(1, m(1), 1, 0)
	never.Age(1e9 * sec)
	if _, ok := never.Lookup(1, m(1), 1e9*sec); !ok {
		t.Fatal("ageing 0 aged an entry")
	}
}

func TestStaticEntriesHoldTheirPort(t *testing.T) {
	tb := newTable(t, nil, 1, 2)
	if err := tb.AddStatic(1, MACFrom(m(1)), 1, Local); err != nil {
		t.Fatal(err)
	}
	if r := tb.Learn(1, m(1), 2, sec); r != Ignored {
		t.Fatalf("learning over a local entry: %v", r)
	}
	if p, _ := tb.Lookup(1, m(1), sec); p != 1 {
		t.Fatal("local entry moved")
	}
	if err := tb.AddStatic(1, MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 1, Static); err == nil {
		t.Fatal("static broadcast accepted")
	}
	if err := tb.AddStatic(1, MACFrom(m(5)), 9, Static); err == nil {
		t.Fatal("static entry on an unregistered port accepted")
	}
	if tb.FlushAll(sec) != 0 {
		t.Fatal("FlushAll removed a local entry")
	}
	if tb.RemovePort(1, sec) != 1 {
		t.Fatal("RemovePort left the local entry")
	}
}

func TestStopLearningLimit(t *testing.T) {
	tb := newTable(t, func(c *Config) { c.Limit = 100 }, 1, 2)
	for i := range 1000 {
		tb.Learn(1, m(i), 1, sec)
	}
	s := tb.Stats()
	if s.Entries != 100 || s.Refused != 900 {
		t.Fatalf("stats %+v", s)
	}
	// Known entries still refresh and move at the limit.
	if r := tb.Learn(1, m(5), 2, 2*sec); r != Moved {
		t.Fatalf("move at the limit: %v", r)
	}
}

func TestEvictFairKeepsOtherPorts(t *testing.T) {
	tb := newTable(t, func(c *Config) { c.Limit = 100; c.Policy = EvictFair }, 1, 2, 3)
	for i := range 10 {
		tb.Learn(1, m(1000+i), 2, sec)
		tb.Learn(1, m(2000+i), 3, sec)
	}
	for i := range 100000 {
		tb.Learn(1, m(1e6+i), 1, sec+int64(i))
	}
	if tb.Len() != 100 {
		t.Fatalf("%d entries, limit 100", tb.Len())
	}
	for i := range 10 {
		if _, ok := tb.Lookup(1, m(1000+i), 2*sec); !ok {
			t.Fatalf("port 2's entry %d was evicted by port 1's flood", i)
		}
		if _, ok := tb.Lookup(1, m(2000+i), 2*sec); !ok {
			t.Fatalf("port 3's entry %d was evicted by port 1's flood", i)
		}
	}
	if tb.PortEntries(1) != 80 {
		t.Fatalf("flooder holds %d", tb.PortEntries(1))
	}
	// The flooder's newest entries survive: eviction took its oldest.
	if _, ok := tb.Lookup(1, m(1e6+99999), 2*sec); !ok {
		t.Fatal("newest flood entry missing")
	}
	if _, ok := tb.Lookup(1, m(1e6), 2*sec); ok {
		t.Fatal("oldest flood entry survived")
	}
	if s := tb.Stats(); s.Evicted != 100000-80 || s.Refused != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestEvictFairIsLRU(t *testing.T) {
	tb := newTable(t, func(c *Config) { c.Limit = 4; c.Policy = EvictFair }, 1)
	for i := range 4 {
		tb.Learn(1, m(i), 1, int64(i+1)*sec)
	}
	tb.Learn(1, m(0), 1, 10*sec) // 0 is used again: 1 is now the LRU
	tb.Learn(1, m(9), 1, 11*sec)
	if _, ok := tb.Lookup(1, m(0), 11*sec); !ok {
		t.Fatal("recently used entry evicted")
	}
	if _, ok := tb.Lookup(1, m(1), 11*sec); ok {
		t.Fatal("least recently used entry kept")
	}
}

func TestPortLimit(t *testing.T) {
	for _, pol := range []Policy{StopLearning, EvictFair} {
		tb := newTable(t, func(c *Config) { c.PortLimit = 5; c.Policy = pol }, 1, 2)
		for i := range 50 {
			tb.Learn(1, m(i), 1, sec+int64(i))
		}
		tb.Learn(1, m(100), 2, sec)
		if tb.PortEntries(1) != 5 || tb.PortEntries(2) != 1 {
			t.Fatalf("%v: port entries %d %d", pol, tb.PortEntries(1), tb.PortEntries(2))
		}
		_, newest := tb.Lookup(1, m(49), 2*sec)
		if newest != (pol == EvictFair) {
			t.Fatalf("%v: newest entry present=%v", pol, newest)
		}
	}
	// A port's own limit overrides the default.
	tb := newTable(t, func(c *Config) { c.PortLimit = 5 })
	if err := tb.AddPort(1, 2); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		tb.Learn(1, m(i), 1, sec)
	}
	if tb.PortEntries(1) != 2 {
		t.Fatalf("port limit 2: %d entries", tb.PortEntries(1))
	}
}

func TestUnregisteredPortRefused(t *testing.T) {
	tb := newTable(t, nil, 1)
	if r := tb.Learn(1, m(1), 7, sec); r != Refused {
		t.Fatalf("learn on unknown port: %v", r)
	}
	tb.Learn(1, m(2), 1, sec)
	tb.RemovePort(1, sec)
	if r := tb.Learn(1, m(2), 1, sec); r != Refused {
		t.Fatalf("learn on removed port: %v", r)
	}
}

func TestFlushes(t *testing.T) {
	tb := newTable(t, nil, 1, 2)
	for i := range 10 {
		tb.Learn(1, m(i), 1, sec)
		tb.Learn(2, m(i), 2, sec)
	}
	sub := tb.Subscribe(100)
	if n := tb.FlushPort(1, sec); n != 10 {
		t.Fatalf("FlushPort: %d", n)
	}
	if n := tb.FlushVLAN(2, sec); n != 10 {
		t.Fatalf("FlushVLAN: %d", n)
	}
	if tb.Len() != 0 || len(sub.C) != 20 {
		t.Fatalf("len %d, events %d", tb.Len(), len(sub.C))
	}
	e := <-sub.C
	if e.Type != EventFlushed || e.Port != 1 || e.VLAN != 1 {
		t.Fatalf("event %+v", e)
	}
	tb.Unsubscribe(sub)
	for range sub.C {
	}
}

func TestEventsNeverBlock(t *testing.T) {
	tb := newTable(t, nil, 1)
	sub := tb.Subscribe(1)
	done := make(chan struct{})
	go func() {
		for i := range 1000 {
			tb.Learn(1, m(i), 1, sec)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("learning blocked on a full subscriber")
	}
	if sub.Dropped() != 999 {
		t.Fatalf("dropped %d, want 999", sub.Dropped())
	}
}

func TestGrowsAndRehashes(t *testing.T) {
	tb := newTable(t, func(c *Config) { c.Limit = 50000; c.Policy = EvictFair; c.Ageing = time.Second }, 1, 2)
	for round := range 5 {
		base := int64(round) * 10 * sec
		for i := range 50000 {
			tb.Learn(1, m(round*100000+i), PortID(1+i%2), base)
		}
		for i := 0; i < 50000; i += 997 {
			if p, ok := tb.Lookup(1, m(round*100000+i), base); !ok || p != PortID(1+i%2) {
				t.Fatalf("round %d: entry %d: %v %v", round, i, p, ok)
			}
		}
		if tb.PortEntries(1)+tb.PortEntries(2) != 50000 {
			t.Fatalf("round %d: per-port counts %d+%d", round, tb.PortEntries(1), tb.PortEntries(2))
		}
		tb.Age(base + 2*sec)
		if tb.Len() != 0 {
			t.Fatalf("round %d: %d left after ageing", round, tb.Len())
		}
	}
	if c := tb.Stats().Capacity; c > 50000*2 {
		t.Fatalf("capacity %d for a 50000 limit", c)
	}
}

func TestEntriesSorted(t *testing.T) {
	tb := newTable(t, nil, 1)
	tb.Learn(2, m(1), 1, sec)
	tb.Learn(1, m(2), 1, sec)
	tb.Learn(1, m(1), 1, 3*sec)
	e := tb.Entries()
	got := fmt.Sprint(e[0].VLAN, e[0].MAC, e[1].VLAN, e[1].MAC, e[2].VLAN, e[2].MAC, e[0].LastSeen)
	want := "1 02:00:00:00:00:01 1 02:00:00:00:00:02 2 02:00:00:00:00:01 3000000000"
	if got != want {
		t.Fatalf("Entries: %s, want %s", got, want)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{Limit: 0},
		{Limit: 10, Ageing: -1},
		{Limit: 10, PortLimit: -1},
		{Limit: 10, Policy: 7},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
	if _, err := ParsePolicy("evict-fiar"); err == nil || err.Error() != `fdb policy "evict-fiar": want stop-learning or evict-fair` {
		t.Fatalf("ParsePolicy error: %v", err)
	}
}

// TestConcurrentLearnLookup is for -race: many readers and learners, with
// moves, evictions, rehashes and ageing underneath.
func TestConcurrentLearnLookup(t *testing.T) {
	t.Run("slot-by-slot", testConcurrentLearnLookup)
	t.Run("whole-line", func(t *testing.T) {
		defer wideProbes()()
		testConcurrentLearnLookup(t)
	})
}

func testConcurrentLearnLookup(t *testing.T) {
	tb := newTable(t, func(c *Config) { c.Limit = 2000; c.Policy = EvictFair; c.Ageing = time.Second }, 1, 2, 3, 4)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20000 {
				now := int64(i) * int64(time.Millisecond)
				tb.Learn(uint16(1+i%3), m(i%5000), PortID(1+(g+i)%4), now)
				if p, ok := tb.Lookup(uint16(1+i%3), m((i*7)%5000), now); ok && (p < 1 || p > 4) {
					t.Errorf("lookup returned port %d", p)
					return
				}
				if i%5000 == 0 {
					tb.Age(now)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 20 {
			tb.Entries()
			tb.Stats()
			tb.FlushVLAN(2, 0)
		}
	}()
	wg.Wait()
	if n := tb.Len(); n > 2000 {
		t.Fatalf("%d entries past the limit", n)
	}
	sum := 0
	for p := PortID(1); p <= 4; p++ {
		sum += tb.PortEntries(p)
	}
	if sum != tb.Len() {
		t.Fatalf("per-port counts sum to %d, table holds %d", sum, tb.Len())
	}
	if err := tb.checkInvariants(); err != nil {
		t.Fatal(err)
	}
}

func TestPortStaticEntriesCounted(t *testing.T) {
	tb := newTable(t, nil, 1)
	if err := tb.AddStatic(1, MACFrom(m(1)), 1, Local); err != nil {
		t.Fatal(err)
	}
	if err := tb.AddStatic(1, MACFrom(m(1)), 1, Local); err != nil { // replace, not add
		t.Fatal(err)
	}
	tb.Learn(1, m(2), 1, sec)
	if tb.PortStaticEntries(1) != 1 || tb.PortEntries(1) != 1 {
		t.Fatalf("static %d learned %d", tb.PortStaticEntries(1), tb.PortEntries(1))
	}
	tb.Delete(1, MACFrom(m(1)), sec)
	if tb.PortStaticEntries(1) != 0 {
		t.Fatalf("static %d after delete", tb.PortStaticEntries(1))
	}
}

// An entry past its ageing time but not yet swept is gone for learning too:
// the next frame from its MAC is a new learning, from any port.
func TestLearnAfterExpiryIsNew(t *testing.T) {
	tb := newTable(t, func(c *Config) { c.Ageing = 10 * time.Second }, 1, 2)
	tb.Learn(1, m(1), 1, 0)
	if r := tb.Learn(1, m(1), 1, 11*sec); r != Inserted {
		t.Fatalf("same port after expiry: %v, want inserted", r)
	}
	tb.Learn(1, m(2), 1, 0)
	if r := tb.Learn(1, m(2), 2, 11*sec); r != Inserted {
		t.Fatalf("other port after expiry: %v, want inserted (not a move)", r)
	}
	if s := tb.Stats(); s.Moved != 0 || s.Aged != 2 || s.Learned != 4 {
		t.Fatalf("stats %+v", s)
	}
}

func TestSetConfig(t *testing.T) {
	tb := newTable(t, func(c *Config) { c.Limit = 100; c.Ageing = time.Hour }, 1, 2)
	for i := range 60 {
		tb.Learn(1, m(i), 1, sec)
		tb.Learn(1, m(1000+i), 2, sec)
	}
	if err := tb.SetConfig(Config{Limit: 0}, sec); err == nil {
		t.Fatal("SetConfig accepted limit 0")
	}
	if err := tb.SetConfig(Config{Limit: 80, Ageing: 10 * time.Second, Policy: EvictFair, PortLimit: 50}, 2*sec); err != nil {
		t.Fatal(err)
	}
	if n := tb.Len(); n != 80 {
		t.Fatalf("%d entries after lowering the limit to 80 under evict-fair", n)
	}
	if tb.PortEntries(1) > 50 || tb.PortEntries(2) > 50 {
		t.Fatalf("per-port limit 50 not enforced: %d, %d", tb.PortEntries(1), tb.PortEntries(2))
	}
	if _, ok := tb.Lookup(1, m(59), 11*sec); ok {
		t.Fatal("the new 10 s ageing did not apply")
	}
	if c := tb.Config(); c.Limit != 80 || c.Ageing != 10*time.Second || c.Policy != EvictFair || c.PortLimit != 50 {
		t.Fatalf("Config() = %+v", c)
	}
}
