package fdb

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// TestLearnLookupIsLearnThenLookup runs one random sequence of frames
// (learn a source, look up a destination), with ageing, moves, static and
// local entries (as sources too), limits and clock steps back and forth,
// against two tables: one through LearnLookup, one through LearnKey and
// LookupKey. Every answer and the tables' contents must agree, and the
// structure must hold.
func TestLearnLookupIsLearnThenLookup(t *testing.T) {
	t.Run("slot-by-slot", testLearnLookupIsLearnThenLookup)
	t.Run("whole-line", func(t *testing.T) {
		defer wideProbes()()
		testLearnLookupIsLearnThenLookup(t)
	})
}

func testLearnLookupIsLearnThenLookup(t *testing.T) {
	for seed := range uint64(10) {
		r := rand.New(rand.NewPCG(seed, 7))
		mod := func(c *Config) { c.Limit = 300; c.PortLimit = 120; c.Policy = Policy(seed % 2); c.Ageing = time.Second }
		a, b := newTable(t, mod, 1, 2, 3, 4), newTable(t, mod, 1, 2, 3, 4)
		now := int64(time.Hour)
		for i := range 4000 {
			switch op := r.IntN(100); {
			case op < 3:
				now -= int64(r.IntN(5)) * int64(time.Millisecond) // a reader with an older clock
			case op < 10:
				now += int64(r.IntN(1500)) * int64(time.Millisecond)
			case op < 12:
				a.Age(now)
				b.Age(now)
			case op < 14:
				mac := MACFrom(m(r.IntN(400)))
				p := PortID(1 + r.IntN(4))
				k := []Kind{Static, Local}[r.IntN(2)]
				ea, eb := a.AddStatic(1, mac, p, k), b.AddStatic(1, mac, p, k)
				if (ea == nil) != (eb == nil) {
					t.Fatalf("seed %d step %d: AddStatic %v vs %v", seed, i, ea, eb)
				}
			}
			src, dst := MakeKey(1, m(r.IntN(400))), MakeKey(1, m(r.IntN(400)))
			if r.IntN(50) == 0 {
				src = MakeKey(1, []byte{0x01, 0, 0x5e, 0, 0, 1})
			}
			p := PortID(1 + r.IntN(4))
			ra, oa, oka := a.LearnLookup(src, p, dst, now)
			rb := b.LearnKey(src, p, now)
			ob, okb := b.LookupKey(dst, now)
			if ra != rb || oa != ob || oka != okb {
				t.Fatalf("seed %d step %d: LearnLookup %v %d %v, LearnKey+LookupKey %v %d %v", seed, i, ra, oa, oka, rb, ob, okb)
			}
			if err := a.checkInvariants(); err != nil {
				t.Fatalf("seed %d step %d: %v", seed, i, err)
			}
		}
		if ea, eb := a.Entries(), b.Entries(); !reflect.DeepEqual(ea, eb) {
			t.Fatalf("seed %d: tables differ:\n%v\n%v", seed, ea, eb)
		}
	}
}

// TestRefreshWritesOnlyForward: a refresh leaves the entry's word alone
// unless the millisecond moved on (so a busy MAC's line is not written per
// frame), and an older clock reading never moves last-seen back.
func TestRefreshWritesOnlyForward(t *testing.T) {
	tb := newTable(t, nil, 1)
	k, other := MakeKey(1, m(1)), MakeKey(1, m(2))
	base := int64(time.Hour)
	tb.LearnKey(k, 1, base)
	val := func() uint64 { return tb.tab.Load().s[tb.tab.Load().find(k)].val.Load() }
	v0 := val()
	for _, now := range []int64{base, base + 999_999, base - 5e6} {
		if r := tb.LearnKey(k, 1, now); r != Refreshed {
			t.Fatalf("LearnKey at %d: %v", now, r)
		}
		if r, _, _ := tb.LearnLookup(k, 1, other, now); r != Refreshed {
			t.Fatalf("LearnLookup at %d: %v", now, r)
		}
		if v := val(); v != v0 {
			t.Fatalf("refresh at %+d ns wrote %x over %x", now-base, v, v0)
		}
	}
	tb.LearnLookup(k, 1, other, base+1e6)
	if got := valSeen(val()); got != millis(base+1e6) {
		t.Fatalf("last seen %d, want %d", got, millis(base+1e6))
	}
}

// TestLearnLookupPastHomeLine: in a wide array, a destination (or source)
// that a full home line pushed into the next line is found by continuing
// the probe, a key missing behind a full line is a miss, and a static or
// local source is answered Ignored with the lookup done: all as LearnKey
// followed by LookupKey answer.
func TestLearnLookupPastHomeLine(t *testing.T) {
	defer wideProbes()()
	tb := newTable(t, func(c *Config) { c.Limit = 64; c.Ageing = time.Second }, 1, 2)
	tab := tb.tab.Load()
	// Six keys with one home line: four fill it, two go on to the next.
	var same []int
	var home uint64
	for i := 0; len(same) < 6; i++ {
		h := tab.homeLine(MakeKey(1, m(i)))
		if len(same) == 0 {
			home = h
		}
		if h == home {
			same = append(same, i)
		}
	}
	now := int64(time.Hour)
	// want is tb's twin, driven through LearnKey and LookupKey.
	want := newTable(t, func(c *Config) { c.Limit = 64; c.Ageing = time.Second }, 1, 2)
	for _, x := range []*Table{tb, want} {
		for j, i := range same[:4] {
			x.LearnKey(MakeKey(1, m(i)), PortID(1+j%2), now)
		}
		if err := x.AddStatic(1, MACFrom(m(same[4])), 2, Local); err != nil {
			t.Fatal(err)
		}
	}
	if tb.tab.Load() != tab {
		t.Fatal("the array was replaced")
	}
	k := func(j int) Key { return MakeKey(1, m(same[j])) }
	if at := tab.find(k(4)); at/lineSlots == int(home) {
		t.Fatalf("key 4 at %d, in its home line %d", at, home)
	}
	missing := k(5) // its home line is full, and it is nowhere
	for _, c := range []struct {
		src  Key
		port PortID
		dst  Key
		now  int64
	}{
		{k(0), 1, k(4), now}, // refresh, destination past its home line
		{k(1), 2, k(4), now}, // same
		{k(4), 1, k(0), now}, // local source past its home line
		{k(4), 1, k(4), now}, // local source and destination
		{k(0), 1, missing, now},
		{k(4), 2, missing, now},
		{k(2), 1, k(3), now + int64(2*time.Second)}, // aged: relearned; destination aged
		{k(0), 1, k(4), now + int64(3*time.Second)},
	} {
		r, out, ok := tb.LearnLookup(c.src, c.port, c.dst, c.now)
		wr := want.LearnKey(c.src, c.port, c.now)
		wout, wok := want.LookupKey(c.dst, c.now)
		if r != wr || out != wout || ok != wok {
			t.Errorf("LearnLookup(%x, %d, %x): %v %d %v, want %v %d %v", c.src, c.port, c.dst, r, out, ok, wr, wout, wok)
		}
		if !reflect.DeepEqual(tb.Entries(), want.Entries()) {
			t.Errorf("LearnLookup(%x, %d, %x): tables differ:\n%v\n%v", c.src, c.port, c.dst, tb.Entries(), want.Entries())
		}
		if err := tb.checkInvariants(); err != nil {
			t.Fatal(err)
		}
	}
	if r, out, ok := tb.LearnLookup(k(4), 2, k(0), now+int64(3*time.Second)); r != Ignored || !ok || out != 1 {
		t.Fatalf("local source: %v %d %v, want ignored and port 1", r, out, ok)
	}
}
