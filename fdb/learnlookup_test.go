package fdb

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// TestLearnLookupIsLearnThenLookup runs one random sequence of frames
// (learn a source, look up a destination), with ageing, moves, statics,
// limits and clock steps back and forth, against two tables: one through
// LearnLookup, one through LearnKey and LookupKey. Every answer and the
// tables' contents must agree, and the structure must hold.
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
				ea, eb := a.AddStatic(1, mac, p, Static), b.AddStatic(1, mac, p, Static)
				if (ea == nil) != (eb == nil) {
					t.Fatalf("seed %d step %d: AddStatic %v vs %v", seed, i, ea, eb)
				}
			}
			src, dst := Key(1, m(r.IntN(400))), Key(1, m(r.IntN(400)))
			if r.IntN(50) == 0 {
				src = Key(1, []byte{0x01, 0, 0x5e, 0, 0, 1})
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
	k, other := Key(1, m(1)), Key(1, m(2))
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
