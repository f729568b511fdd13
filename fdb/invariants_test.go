package fdb

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// checkInvariants verifies the table's structure: every live key is unique
// and findable from its home (no empty slot on its probe path) by both the
// slot-by-slot and (in a wide array, whose homes start lines) the
// whole-line probe, every port queue links exactly
// that port's learned entries, and the counts agree.
func (t *Table) checkInvariants() error {
	tab := t.tab.Load()
	seen := map[Key]int{}
	learned, used := 0, 0
	for i := range tab.s {
		k := tab.s[i].loadKey()
		if k != empty {
			used++
		}
		if k == moving {
			return fmt.Errorf("slot %d left marked moving", i)
		}
		if !k.live() {
			continue
		}
		if j, ok := seen[k]; ok {
			return fmt.Errorf("key %x in slots %d and %d", k, j, i)
		}
		seen[k] = i
		if f := tab.scan(k, tab.home(k)); f != i {
			return fmt.Errorf("key %x in slot %d is not findable slot by slot (find: %d)", k, i, f)
		}
		if f := tab.find(k); tab.wide && f != i {
			return fmt.Errorf("key %x in slot %d is not findable by its home line (find: %d)", k, i, f)
		}
		if valKind(tab.s[i].val.Load()) == Learned {
			learned++
		}
	}
	if len(seen) != t.live || learned != int(t.learned.Load()) || used != tab.used {
		return fmt.Errorf("counts: %d live (table says %d), %d learned (%d), %d used (%d)",
			len(seen), t.live, learned, t.learned.Load(), used, tab.used)
	}
	queued := 0
	for id, ps := range t.ports {
		n := 0
		for i := ps.head; i >= 0; i = tab.l[i].next {
			if n++; n > len(tab.s) {
				return fmt.Errorf("port %d: queue loops", id)
			}
			v := tab.s[i].val.Load()
			if !tab.s[i].loadKey().live() || valPort(v) != id || valKind(v) != Learned {
				return fmt.Errorf("port %d: queue links slot %d (key %x, port %d)", id, i, tab.s[i].key.Load(), valPort(v))
			}
		}
		if n != ps.count {
			return fmt.Errorf("port %d: count %d, queue %d", id, ps.count, n)
		}
		queued += n
	}
	if queued != learned {
		return fmt.Errorf("%d entries queued, %d learned", queued, learned)
	}
	return nil
}

// TestInvariantsUnderRandomChurn drives every mutating verb in random order
// against small tables (so limits, evictions, backward shifts and rehashes
// all happen often) and checks the structure after each step. It found a
// key placed past a slot that an eviction had just emptied.
func TestInvariantsUnderRandomChurn(t *testing.T) {
	t.Run("slot-by-slot", testInvariantsUnderRandomChurn)
	t.Run("whole-line", func(t *testing.T) {
		defer wideProbes()()
		testInvariantsUnderRandomChurn(t)
	})
}

// wideProbes makes tables built until the returned func is called probe the
// way large ones do, so that small tests reach that code.
func wideProbes() (restore func()) {
	old := branchyLines
	branchyLines = 0
	return func() { branchyLines = old }
}

func testInvariantsUnderRandomChurn(t *testing.T) {
	seeds := 30
	if testing.Short() {
		seeds = 5
	}
	for seed := range uint64(seeds) {
		r := rand.New(rand.NewPCG(seed, 1))
		pol := Policy(seed % 2)
		tb := newTable(t, func(c *Config) { c.Limit = 200; c.PortLimit = 80; c.Policy = pol; c.Ageing = time.Second }, 1, 2, 3, 4)
		for i := range 5000 {
			now := int64(r.IntN(3000)) * int64(time.Millisecond)
			op, desc := r.IntN(100), ""
			switch {
			case op < 85:
				desc = "learn"
				tb.Learn(uint16(1+r.IntN(3)), m(r.IntN(500)), PortID(1+r.IntN(4)), now)
			case op < 89:
				desc = "age"
				tb.Age(now)
			case op < 91:
				desc = "flush-vlan"
				tb.FlushVLAN(2, now)
			case op < 93:
				desc = "flush-port"
				tb.FlushPort(PortID(1+r.IntN(4)), now)
			case op < 96:
				desc = "static"
				_ = tb.AddStatic(uint16(1+r.IntN(3)), MACFrom(m(r.IntN(500))), PortID(1+r.IntN(4)), Static)
			case op < 99:
				desc = "delete"
				tb.Delete(uint16(1+r.IntN(3)), MACFrom(m(r.IntN(500))), now)
			default:
				desc = "remove-port"
				p := PortID(1 + r.IntN(4))
				tb.RemovePort(p, now)
				if err := tb.AddPort(p, 0); err != nil {
					t.Fatal(err)
				}
			}
			if err := tb.checkInvariants(); err != nil {
				t.Fatalf("seed %d (%v), step %d (%s): %v", seed, pol, i, desc, err)
			}
		}
	}
}
