package fdb

import (
	"math/bits"
	"sync/atomic"
)

// The slot array: an open-addressing hash table with linear probing, read
// without a lock by the frame path and written under Table.mu.
//
// Read side and write side pair up as follows; every other file goes
// through the helpers here.
//
//   - A writer stores a slot's value before its key (place, shift). A reader
//     loads the key (its probe), then the value, then the key again (found):
//     when the second load still shows its key, the value it holds is that
//     key's, whatever writers did in between.
//   - A deletion (vacate) marks the slot moving before it shifts the entries
//     after it back, and marks each slot an entry leaves moving as well. A
//     reader walks past a moving slot as past any other key, so a probe never
//     stops early on a slot that is only in transit; at worst a lookup racing
//     with the shift misses the entry in transit, and the frame floods. No
//     slot is moving once the lock is released.
//   - The value of a live entry changes in place: a lock-free refresh swaps
//     in a newer last-seen time (compare-and-swap, so it never undoes a move
//     or a newer refresh), and writers store a new port or time under the
//     lock.
//   - A rehash builds a new array and publishes it with one pointer store
//     (Table.tab), so readers see either generation whole.

// Slot key states besides a live Key (which has bit 63 set).
const (
	empty  Key = 0
	moving Key = 1 << 62
)

// slot is what readers touch: 16 bytes, four to a cache line, read with
// atomic loads only. The value packs the port, the kind and the last-seen
// time (see packVal), so a lookup and its expiry check read one line and a
// refresh is one compare-and-swap.
type slot struct {
	key atomic.Uint64 // a Key, or empty or moving
	val atomic.Uint64
}

func (s *slot) loadKey() Key { return Key(s.key.Load()) }

// link threads learned entries into their port's queue (see evictLocked);
// guarded by Table.mu. queued is the last-seen time (ms) when the entry was
// put at the queue's tail: an entry whose seen is newer has been used since
// and gets a second chance.
type link struct {
	prev, next int32
	queued     int64
}

// slots is one generation of the array. A rehash builds a new one and swaps
// the pointer, so readers never see a half-built table.
type slots struct {
	// lines is the array as lookups read it: a key's home line is one
	// element, reached with one bounds check and one address computation,
	// which keeps the instructions per lookup (what limits how many
	// lookups' cache misses a core overlaps on a large table) low. s is the
	// same memory slot by slot, for the writers and for probes past the home
	// line.
	lines []line
	s     []slot
	l     []link // the queue link of each slot, same index
	n     uint64
	used  int  // live entries in this array
	full  int  // live entries beyond this trigger a rehash (growth)
	wide  bool // probe the home line without branches (see branchyLines)
}

// newSlots sizes an array for entries live entries at a load of at most 2/3:
// linear probing from the start of a cache line then touches few more than
// one line per lookup on average; an entry costs the slot and its link, over
// the load.
func newSlots(entries int) *slots {
	n := (entries*3/2 + 8) &^ (lineSlots - 1)
	lines := make([]line, n/lineSlots)
	t := &slots{lines: lines, s: slotsOf(lines), l: make([]link, n), n: uint64(n), full: n * 2 / 3,
		wide: len(lines) > branchyLines}
	hugePages(t.s)
	return t
}

// lineSlots is how many slots share a 64-byte cache line.
const lineSlots = 4

// line is the slots of one cache line.
type line [lineSlots]slot

// branchyLines is the largest array (in lines; 64 KiB) probed slot by slot.
// A small table stays in the L1/L2 cache, where the slot-by-slot probe is
// faster: once its branches are predicted, a key's value is loaded while its
// compare is still under way. A large table is bound by cache misses
// instead, and there a mispredicted branch on the loaded keys waits for the
// miss that brings them, so each lookup would pay its miss in turn; the
// branch-free match of a whole line lets the core run ahead into the next
// lookups and overlap their misses.
//
// A variable only so that tests can run small tables the wide way.
var branchyLines = 1024

// home is where a key's probe starts. In a wide array it is the first slot
// of a cache line, so that most lookups read one line (large arrays are
// page-aligned by the allocator). A small array is in the cache and probed
// slot by slot (see branchyLines): there any slot is a home, so that keys
// spread over all four slots of a line rather than queue up from its first;
// more keys are then found at their first probe, and the probe loop's exit
// branch, which mispredicts for every key found past it, is right more
// often. The multiply spreads MACs that differ only in their last byte (the
// common case: one vendor prefix per node); the high word of a 128-bit
// product maps the hash onto the slots without a modulo.
func (t *slots) home(key Key) uint64 {
	if t.wide {
		return t.homeLine(key) * lineSlots
	}
	hi, _ := bits.Mul64(uint64(key)*0x9E3779B97F4A7C15, t.n)
	return hi
}

// homeLine is the line a key's home is in, as an index into lines: in a
// wide array, the line home starts. The product's top bits depend on every
// bit of the key, and the line comes from the top bits alone.
func (t *slots) homeLine(key Key) uint64 {
	hi, _ := bits.Mul64(uint64(key)*0x9E3779B97F4A7C15, uint64(len(t.lines)))
	return hi
}

func (t *slots) next(i uint64) uint64 {
	if i+1 == t.n {
		return 0
	}
	return i + 1
}

// find is the probe: it returns the slot holding key, or -1. In a small
// array it goes slot by slot from the key's home (scan); in a wide one it
// matches the home line at once, and only a full home line sends it on
// slot by slot. scan and the line helpers below inline; find itself is
// beyond the inliner's budget, and a call costs a large part of a lookup
// that hits the cache, so the frame path's two lookups (LookupKey and
// LearnLookup) spell find out with those helpers instead of calling it.
// Change them together.
func (t *slots) find(key Key) int {
	h := t.home(key)
	if !t.wide {
		return t.scan(key, h)
	}
	ln := &t.lines[h/lineSlots]
	if m := ln.keys().match(key); m != 0 {
		return int(h) + first(m)
	}
	if full(ln) {
		return t.scan(key, h+lineSlots)
	}
	return -1
}

// scan probes slot by slot from i: from a key's home in a small array, or
// past a full home line in a large one.
func (t *slots) scan(key Key, i uint64) int {
	for range t.n {
		if i == t.n {
			i = 0
		}
		k := t.s[i].loadKey()
		if k == key {
			return int(i)
		}
		if k == empty {
			return -1
		}
		i++
	}
	return -1
}

// lineKeys is the keys of one line, loaded together for match: a struct of
// four words, which the compiler keeps in registers. (Loads and compare in
// one helper would cost more than the inliner's budget.)
type lineKeys struct{ k0, k1, k2, k3 Key }

// keys loads the keys of ln's slots.
func (ln *line) keys() lineKeys {
	return lineKeys{ln[0].loadKey(), ln[1].loadKey(), ln[2].loadKey(), ln[3].loadKey()}
}

// match has bit j set when kj, the key in slot j of a line, is key, without
// branching on the keys (see branchyLines).
func (k lineKeys) match(key Key) uint64 {
	return b2u(k.k0 == key) | b2u(k.k1 == key)<<1 | b2u(k.k2 == key)<<2 | b2u(k.k3 == key)<<3
}

// first is the index in its line of the lowest slot a non-zero match mask
// names (masked, so that indexing a line with it needs no bounds check).
func first(m uint64) int { return bits.TrailingZeros64(m) & (lineSlots - 1) }

// b2u is the compiler's idiom for a flag set from a comparison (SETcc), with
// no jump.
func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// full says no slot of line is empty, so a key whose home it is may lie
// beyond it; otherwise a key missing from its home line is not in the table.
func full(ln *line) bool {
	return min(ln[0].key.Load(), ln[1].key.Load(), ln[2].key.Load(), ln[3].key.Load()) != uint64(empty)
}

// found is a lookup's answer from s, the slot its probe found key in, at ms
// with ageing age (ms; 0 = never): the value, checked against a reuse of
// the slot between the probe and the value's load.
func found(s *slot, key Key, age, ms int64) (PortID, bool) {
	v := s.val.Load()
	if s.loadKey() != key {
		// The slot was reused between our loads; the entry is gone.
		return 0, false
	}
	if age > 0 && valKind(v) == Learned && ms-valSeen(v) >= age {
		return 0, false
	}
	return valPort(v), true
}

// The write side: all under Table.mu.

// findOrFree returns the slot holding key (or -1) and the empty slot that
// ends its probe path, where it would go. No slot is moving under the lock,
// so the walk stops at the first empty one.
func (t *slots) findOrFree(key Key) (at, free int) {
	i := t.home(key)
	for range t.n {
		switch t.s[i].loadKey() {
		case key:
			return int(i), -1
		case empty:
			return -1, int(i)
		}
		if i++; i == t.n {
			i = 0
		}
	}
	return -1, -1
}

// place puts (key, val) in the free slot at.
func (t *slots) place(at int, key Key, val uint64) {
	s := &t.s[at]
	t.used++
	// Value before key: a reader that sees the key sees its value.
	s.val.Store(val)
	s.key.Store(uint64(key))
}

// vacate empties slot at by backward shifting: entries after it in its
// cluster that may live earlier on their probe path move back into the
// hole, so the array never holds tombstones (under eviction churn, a MAC
// flood against evict-fair, tombstones would fill it and force a rehash, an
// allocation, every few thousand inserts). moved hears of every entry
// shifted, with its value, so that the caller can follow it (queue links).
func (t *slots) vacate(at int, moved func(v uint64, from, to uint64)) {
	hole := uint64(at)
	t.s[hole].key.Store(uint64(moving))
	for j := t.next(hole); ; j = t.next(j) {
		k := t.s[j].loadKey()
		if k == empty {
			break
		}
		// k may fill the hole if the hole lies on its probe path: between
		// its home and where it sits now, cyclically.
		h := t.home(k)
		if (hole+t.n-h)%t.n < (j+t.n-h)%t.n {
			moved(t.shift(j, hole), j, hole)
			hole = j
		}
	}
	t.s[hole].key.Store(uint64(empty))
	t.used--
}

// shift moves the entry at from into the slot to (marked moving) and marks
// from moving. It returns the entry's value.
func (t *slots) shift(from, to uint64) uint64 {
	src, dst := &t.s[from], &t.s[to]
	k, v := src.key.Load(), src.val.Load()
	dst.val.Store(v)
	dst.key.Store(k)
	src.key.Store(uint64(moving))
	return v
}

// The value word: port (16 bits), kind (2 bits), last-seen time in
// milliseconds (46 bits, some 2,000 years).

// MaxPort is the largest port ID the table stores.
const MaxPort = 1<<16 - 1

func packVal(p PortID, k Kind, ms int64) uint64 {
	return uint64(p) | uint64(k)<<16 | uint64(ms)<<18
}
func valPort(v uint64) PortID            { return PortID(uint16(v)) }
func valKind(v uint64) Kind              { return Kind(v>>16) & 3 }
func valSeen(v uint64) int64             { return int64(v >> 18) }
func withSeen(v uint64, ms int64) uint64 { return v&(1<<18-1) | uint64(ms)<<18 }

// millis turns clock nanoseconds into the table's milliseconds.
func millis(ns int64) int64 {
	if ns < 0 {
		return 0
	}
	return ns / 1e6
}
