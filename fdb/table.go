package fdb

import (
	"fmt"
	"math/bits"
	"sort"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Slot key states. A live key has bit 63 set (see pack).
const (
	empty uint64 = 0
	// moving marks a slot for the instant a deletion shifts entries
	// through it: readers walk past it as past any other key. No slot keeps
	// it once the table's lock is released.
	moving   uint64 = 1 << 62
	occupied uint64 = 1 << 63
)

// slot is what readers touch: 16 bytes, four to a cache line, read with
// atomic loads only. val packs the port (16 bits), the kind (2 bits) and the
// last-seen time in milliseconds (46 bits, 2,000 years), so a lookup and its
// expiry check read one line and a refresh is one compare-and-swap.
type slot struct {
	key atomic.Uint64
	val atomic.Uint64
}

// link threads learned entries into their port's queue; guarded by Table.mu.
// queued is the last-seen time (ms) when the entry was put at the queue's tail:
// an entry whose seen is newer has been used since and gets a second chance.
type link struct {
	prev, next int32
	queued     int64
}

// slots is one generation of the open-addressing array. A rehash builds a
// new one and swaps the pointer, so readers never see a half-built table.
type slots struct {
	// lines is the array as lookups read it: a key's home is one element,
	// reached with one bounds check and one address computation (probing
	// a []slot took five instructions more, and on a large table the
	// instructions per lookup are what limits how many lookups' cache
	// misses the core overlaps). s is the same memory slot by slot, for
	// the writers and for probes past the home line.
	lines []line
	s     []slot
	l     []link
	n     uint64
	used  int  // live entries in this array
	full  int  // live entries beyond this trigger a rehash (growth)
	wide  bool // probe the home line without branches (see branchyLines)
}

// newSlots sizes an array for entries live entries at a load of at most 2/3:
// linear probing from the start of a cache line then touches 1.2 lines per
// lookup on average, and 1M entries cost about 48 bytes each (16 for the
// slot, 16 for its queue link, over 2/3).
func newSlots(entries int) *slots {
	n := (entries*3/2 + 8) &^ (lineSlots - 1)
	lines := make([]line, n/lineSlots)
	t := &slots{lines: lines, s: unsafe.Slice(&lines[0][0], n), l: make([]link, n), n: uint64(n), full: n * 2 / 3,
		wide: len(lines) > branchyLines}
	hugePages(t.s)
	return t
}

// lineSlots is how many slots share a 64-byte cache line.
const lineSlots = 4

// line is the slots of one cache line.
type line [lineSlots]slot

// home is where a key's probe starts. In a wide array it is the first slot
// of a cache line, so a lookup reads one line for 9 keys in 10 at the 2/3
// load (large arrays are page-aligned by the allocator). A small array is
// in the cache and probed slot by slot (see branchyLines): there any slot
// is a home, so that keys spread over all four slots of a line rather than
// queue up from its first. At 1k entries that finds 74% of keys at their
// first probe instead of 40%, and the probe loop's exit branch, which
// mispredicts for every new MAC found past its first probe, is right that
// much more often. The multiply spreads MACs that differ only in their
// last byte (the common case: one vendor prefix per node); the high word
// of a 128-bit product maps the hash onto the slots without a modulo.
func (t *slots) home(key uint64) uint64 {
	if t.wide {
		return t.homeLine(key) * lineSlots
	}
	hi, _ := bits.Mul64(key*0x9E3779B97F4A7C15, t.n)
	return hi
}

// homeLine is the line a key's home is in, as an index into lines: in a
// wide array, the line home starts.
func (t *slots) homeLine(key uint64) uint64 {
	// The product's top bits depend on every bit of the key, and the line
	// comes from the top bits alone; folding the high half into the low one
	// (as this did) changed no probe count and cost three instructions.
	hi, _ := bits.Mul64(key*0x9E3779B97F4A7C15, uint64(len(t.lines)))
	return hi
}

func (t *slots) next(i uint64) uint64 {
	if i+1 == t.n {
		return 0
	}
	return i + 1
}

// find returns the slot holding key, or -1.
func (t *slots) find(key uint64) int {
	if !t.wide {
		return t.findFrom(key, t.home(key))
	}
	return t.findWide(key)
}

// findWide is find for a large array.
func (t *slots) findWide(key uint64) int {
	h := t.homeLine(key)
	ln := &t.lines[h]
	if m := ln.keys().match(key); m != 0 {
		return int(h*lineSlots) + first(m)
	}
	if full(ln) {
		return t.findFrom(key, (h+1)*lineSlots)
	}
	return -1
}

// branchyLines is the largest array (in lines; 64 KiB) probed slot by
// slot. A small table stays in the L1/L2 cache, where the slot-by-slot
// probe is faster: once its branches are predicted, a key's value is loaded
// while its compare is still under way (5.6 against 7.8 ns at 1k entries,
// 26 against 31 ns per forwarded frame). A large table is bound by cache
// misses instead, and there a mispredicted branch on the loaded keys waits
// for the miss that brings them, so each lookup paid its miss in turn; the
// branch-free match of a whole line lets the core run ahead into the next
// lookups and overlap their misses (64k entries: 20 against 14 ns).
//
// A variable only so that tests can run small tables the wide way.
var branchyLines = 1024

// lineKeys is the keys of one line, loaded together for match: a struct of
// four words, which the compiler keeps in registers. (Loads and compare in
// one helper would cost more than the inliner's budget.)
type lineKeys struct{ k0, k1, k2, k3 uint64 }

// keys loads the keys of ln's slots.
func (ln *line) keys() lineKeys {
	return lineKeys{ln[0].key.Load(), ln[1].key.Load(), ln[2].key.Load(), ln[3].key.Load()}
}

// match has bit j set when kj, the key in slot j of a line, is key, without
// branching on the keys (see branchyLines). ln.keys().match(key) is the
// probe of a home line.
func (k lineKeys) match(key uint64) uint64 {
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
	return min(ln[0].key.Load(), ln[1].key.Load(), ln[2].key.Load(), ln[3].key.Load()) != empty
}

// findFrom probes slot by slot from i: from a key's home in a small
// array, or past a full home line in a large one.
func (t *slots) findFrom(key, i uint64) int {
	for range t.n {
		if i == t.n {
			i = 0
		}
		k := t.s[i].key.Load()
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

// findOrFree returns the slot holding key (or -1) and the empty slot that
// ends its probe path, where it would go. Writers only (under Table.mu, so
// no slot is marked moving).
func (t *slots) findOrFree(key uint64) (at, free int) {
	i := t.home(key)
	for range t.n {
		switch t.s[i].key.Load() {
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

type portState struct {
	limit      int // 0: no per-port limit
	count      int // learned entries
	fixed      int // static and local entries
	head, tail int32
}

type flapState struct {
	first int64
	moves int
}

// Table is the forwarding table. Use New.
type Table struct {
	// Read on the frame path without the lock; SetConfig changes them.
	ageing atomic.Int64 // ms; 0 = never
	limit  atomic.Int64
	policy atomic.Uint32

	tab     atomic.Pointer[slots]
	learned atomic.Int64 // learned entries, read without the lock to refuse early
	refused atomic.Uint64

	mu     sync.Mutex
	live   int
	ports  map[PortID]*portState
	flaps  map[uint64]*flapState
	subs   []*Subscription
	st     Stats
	plimit int
}

// New builds an empty table.
func New(cfg Config) (*Table, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &Table{
		plimit: cfg.PortLimit,
		ports:  make(map[PortID]*portState),
		flaps:  make(map[uint64]*flapState),
	}
	// Start small and double: a simulator builds many switches with few MACs.
	t.ageing.Store(cfg.Ageing.Milliseconds())
	t.limit.Store(int64(cfg.Limit))
	t.policy.Store(uint32(cfg.Policy))
	t.tab.Store(newSlots(min(cfg.Limit, 64)))
	return t, nil
}

// Config returns the settings the table runs with.
func (t *Table) Config() Config {
	t.mu.Lock()
	defer t.mu.Unlock()
	return Config{Ageing: durationOf(t.ageing.Load() * 1e6), Limit: int(t.limit.Load()), PortLimit: t.plimit, Policy: Policy(t.policy.Load())}
}

// SetConfig changes the ageing time, the limits and the policy of a live
// table (a configuration reload). Ports whose limit is the old per-port
// default take the new one; ports given a limit of their own keep it. A lower limit under
// evict-fair evicts down to it at once; under stop-learning the excess
// stays until it ages out, as the Linux bridge's fdb_max_learned does.
func (t *Table) SetConfig(cfg Config, now int64) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ps := range t.ports {
		if ps.limit == t.plimit {
			ps.limit = cfg.PortLimit
		}
	}
	t.plimit = cfg.PortLimit
	t.ageing.Store(cfg.Ageing.Milliseconds())
	t.limit.Store(int64(cfg.Limit))
	t.policy.Store(uint32(cfg.Policy))
	if cfg.Policy == EvictFair {
		for t.learned.Load() > int64(cfg.Limit) && t.evictLocked(t.fullestLocked(), now) {
		}
		for _, ps := range t.ports {
			for ps.limit > 0 && ps.count > ps.limit && t.evictLocked(ps, now) {
			}
		}
	}
	return nil
}

// AddPort registers a port; learning on an unregistered port is refused, so a
// frame still in flight from a removed port cannot leave an entry behind.
// limit 0 means the table's PortLimit.
func (t *Table) AddPort(p PortID, limit int) error {
	if p == 0 || p > MaxPort {
		return fmt.Errorf("fdb: port %d: want 1-%d", p, MaxPort)
	}
	if limit < 0 {
		return fmt.Errorf("fdb: port %d limit %d: must not be negative", p, limit)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.ports[p]; ok {
		return fmt.Errorf("fdb: port %d already registered", p)
	}
	if limit == 0 {
		limit = t.plimit
	}
	t.ports[p] = &portState{limit: limit, head: -1, tail: -1}
	return nil
}

// RemovePort flushes every entry on p, static ones included, and forgets p.
// It returns how many entries went.
func (t *Table) RemovePort(p PortID, now int64) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.flushLocked(func(v uint64, _ uint64) bool { return valPort(v) == p }, now)
	delete(t.ports, p)
	return n
}

// PortEntries is how many learned entries p holds (what its limit counts).
func (t *Table) PortEntries(p PortID) int { return t.portState(p).count }

// PortStaticEntries is how many static and local entries p holds.
func (t *Table) PortStaticEntries(p PortID) int { return t.portState(p).fixed }

// portState is a copy of p's state, zero for an unregistered port.
func (t *Table) portState(p PortID) portState {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ps := t.ports[p]; ps != nil {
		return *ps
	}
	return portState{}
}

// Lookup returns the port behind (vlan, mac), or false on a miss. A learned
// entry older than the ageing time is a miss even before Age sweeps it, so
// expiry is exact whatever the sweep interval.
func (t *Table) Lookup(vlan uint16, mac []byte, now int64) (PortID, bool) {
	return t.LookupKey(Key(vlan, mac), now)
}

// Key is (vlan, mac) packed as the table stores it: the MAC in the low 48
// bits, the VLAN above, bit 63 set. The frame path computes it once per
// address and hands it to LearnKey and LookupKey.
func Key(vlan uint16, mac []byte) uint64 { return pack(vlan, mac) }

// LookupKey is Lookup for a key made by Key.
func (t *Table) LookupKey(key uint64, now int64) (PortID, bool) {
	tab := t.tab.Load()
	// find, by hand: this runs once per frame and the call cost a quarter
	// of a lookup that hits the cache.
	var s *slot
	if !tab.wide {
		at := tab.findFrom(key, tab.home(key))
		if at < 0 {
			return 0, false
		}
		s = &tab.s[at]
	} else {
		h := tab.homeLine(key)
		ln := &tab.lines[h]
		if m := ln.keys().match(key); m != 0 {
			s = &ln[first(m)]
		} else if !full(ln) {
			return 0, false
		} else if at := tab.findFrom(key, (h+1)*lineSlots); at >= 0 {
			s = &tab.s[at]
		} else {
			return 0, false
		}
	}
	return found(s, key, t.ageing.Load(), millis(now))
}

// found is a lookup's answer from s, the slot its probe found key in, at
// ms with ageing age (ms; 0 = never).
func found(s *slot, key uint64, age, ms int64) (PortID, bool) {
	v := s.val.Load()
	if s.key.Load() != key {
		// The slot was reused between our loads; the entry is gone.
		return 0, false
	}
	if age > 0 && valKind(v) == Learned && ms-valSeen(v) >= age {
		return 0, false
	}
	return valPort(v), true
}

// Learn records that a frame from (vlan, mac) arrived on port at now.
// Refreshing a known entry takes no lock and, when now has not moved on,
// writes nothing, so two cores seeing one busy MAC do not fight over its
// cache line.
func (t *Table) Learn(vlan uint16, mac []byte, port PortID, now int64) Result {
	return t.LearnKey(Key(vlan, mac), port, now)
}

// LearnKey is Learn for a key made by Key.
func (t *Table) LearnKey(key uint64, port PortID, now int64) Result {
	if key&(1<<40) != 0 || key&(1<<48-1) == 0 {
		// Group or all-zero source: it names no one station.
		return Ignored
	}
	ms := millis(now)
	tab := t.tab.Load()
	if i := tab.find(key); i >= 0 {
		s := &tab.s[i]
		v := s.val.Load()
		if valKind(v) != Learned {
			return Ignored
		}
		if valPort(v) == port && !t.expired(v, ms) {
			if valSeen(v) < ms {
				// A failed swap means a move or a newer refresh won.
				s.val.CompareAndSwap(v, withSeen(v, ms))
			}
			return Refreshed
		}
	} else {
		return t.learnNew(key, port, now)
	}
	t.mu.Lock()
	r := t.learnLocked(key, port, now, ms)
	t.mu.Unlock()
	return r
}

// learnNew is Learn for a unicast key a probe did not find.
func (t *Table) learnNew(key uint64, port PortID, now int64) Result {
	if Policy(t.policy.Load()) == StopLearning && t.learned.Load() >= t.limit.Load() {
		// A MAC flood against a full stop-learning table ends here, without
		// the lock.
		t.refused.Add(1)
		return Refused
	}
	t.mu.Lock()
	r := t.learnLocked(key, port, now, millis(now))
	t.mu.Unlock()
	return r
}

// LearnLookup is LearnKey(src, port, now) followed by LookupKey(dst, now),
// the two table operations of every forwarded unicast frame, in one call:
// one call instead of two, one table pointer load, one clock conversion,
// one ageing load, and both homes computed before either is probed.
// Probes go slot by slot or line-wide as find does (see branchyLines): a
// whole-line, branch-free match of both keys measured 15 against 12 ns at
// 1k entries, as it makes each value's load wait for the keys' compare.
// A refresh of a live entry of port's, and a static or local source (which
// LearnKey ignores), are answered here; anything else goes the general way
// (LearnKey, then LookupKey: that may have changed or replaced the array).
func (t *Table) LearnLookup(src uint64, port PortID, dst uint64, now int64) (r Result, out PortID, ok bool) {
	tab := t.tab.Load()
	hs, hd := tab.home(src), tab.home(dst)
	ms := millis(now)
	age := t.ageing.Load()
	var s *slot
	if !tab.wide {
		// Slot by slot, as LookupKey does (see branchyLines).
		at := tab.findFrom(src, hs)
		if src&(1<<40) != 0 || src&(1<<48-1) == 0 {
			// A group or all-zero address, which LearnKey ignores.
			return t.learnThenLookup(src, port, dst, now)
		}
		if at < 0 {
			// New: learn it without probing for it again (a MAC flood
			// against a full table is refused without a second probe).
			return t.learnNewThenLookup(src, port, dst, now)
		}
		s = &tab.s[at]
	} else {
		ls := &tab.lines[hs/lineSlots]
		m := ls.keys().match(src)
		if src&(1<<40) != 0 || src&(1<<48-1) == 0 {
			return t.learnThenLookup(src, port, dst, now)
		}
		if m == 0 {
			if full(ls) {
				return t.learnThenLookup(src, port, dst, now) // maybe further on
			}
			return t.learnNewThenLookup(src, port, dst, now)
		}
		s = &ls[first(m)]
	}
	v := s.val.Load()
	if s.key.Load() != src {
		// The slot was reused between the key's load and the value's: the
		// value may be another key's.
		return t.learnThenLookup(src, port, dst, now)
	}
	r = Refreshed
	if valKind(v) != Learned {
		// A static or local entry (the gateway's MAC, say): LearnKey
		// ignores it and changes nothing, so the lookup goes on here.
		r = Ignored
	} else if valPort(v) != port || (age > 0 && ms-valSeen(v) >= age) {
		return t.learnThenLookup(src, port, dst, now)
	} else if valSeen(v) < ms {
		// A refresh writes only when the millisecond moved on, and never
		// back: a busy MAC's line stays shared between the cores reading
		// it, and a reader with an older clock reading does not undo a
		// newer one's. A failed swap means a move or a newer refresh won.
		s.val.CompareAndSwap(v, withSeen(v, ms))
	}

	if !tab.wide {
		at := tab.findFrom(dst, hd)
		if at < 0 {
			return r, 0, false
		}
		s = &tab.s[at]
	} else {
		ld := &tab.lines[hd/lineSlots]
		if m := ld.keys().match(dst); m != 0 {
			s = &ld[first(m)]
		} else if !full(ld) {
			return r, 0, false
		} else if at := tab.findFrom(dst, hd+lineSlots); at >= 0 {
			// Past its home line: the probe goes on from the next one.
			s = &tab.s[at]
		} else {
			return r, 0, false
		}
	}
	out, ok = found(s, dst, age, ms)
	return r, out, ok
}

// learnNewThenLookup is LearnLookup's path for a source its probe did not
// find: kept out of line, like learnThenLookup, so that the refresh path
// stays small enough to keep its state in registers.
//
//go:noinline
func (t *Table) learnNewThenLookup(src uint64, port PortID, dst uint64, now int64) (Result, PortID, bool) {
	r := t.learnNew(src, port, now)
	out, ok := t.LookupKey(dst, now)
	return r, out, ok
}

// learnThenLookup is LearnLookup's path for everything but a refresh found
// in its home line.
//
//go:noinline
func (t *Table) learnThenLookup(src uint64, port PortID, dst uint64, now int64) (Result, PortID, bool) {
	r := t.LearnKey(src, port, now)
	out, ok := t.LookupKey(dst, now)
	return r, out, ok
}

// expired says whether a learned entry's value is past the ageing time.
func (t *Table) expired(v uint64, ms int64) bool {
	a := t.ageing.Load()
	return a > 0 && ms-valSeen(v) >= a
}

func (t *Table) learnLocked(key uint64, port PortID, now, ms int64) Result {
	tab := t.tab.Load()
	at := tab.find(key)
	ps := t.ports[port]
	if at >= 0 {
		s := &tab.s[at]
		v := s.val.Load()
		if valKind(v) != Learned {
			return Ignored
		}
		if t.expired(v, ms) {
			// Lookups already treat it as gone; age it now, so that what
			// follows is a new learning (counted, announced, limited)
			// rather than a refresh or a move of a dead entry.
			t.deleteLocked(tab, at)
			t.st.Aged++
			t.emit(Event{Type: EventAged, Kind: Learned, Port: valPort(v), Time: now}, key)
			return t.learnLocked(key, port, now, ms)
		}
		old := valPort(v)
		if old == port {
			if valSeen(v) < ms {
				s.val.Store(withSeen(v, ms))
			}
			return Refreshed
		}
		return t.moveLocked(tab, at, key, old, port, ps, now, ms)
	}
	if ps == nil {
		t.refused.Add(1)
		return Refused
	}
	if ps.limit > 0 && ps.count >= ps.limit {
		if Policy(t.policy.Load()) == StopLearning || !t.evictLocked(ps, now) {
			t.refused.Add(1)
			return Refused
		}
	}
	if t.learned.Load() >= t.limit.Load() {
		if Policy(t.policy.Load()) == StopLearning || !t.evictLocked(t.fullestLocked(), now) {
			t.refused.Add(1)
			return Refused
		}
	}
	tab, free := t.roomLocked(key)
	t.placeLocked(tab, free, key, packVal(port, Learned, ms))
	t.linkTail(tab, ps, int32(free), ms)
	ps.count++
	t.learned.Add(1)
	t.st.Learned++
	t.emit(Event{Type: EventLearned, Kind: Learned, Port: port, Time: now}, key)
	return Inserted
}

func (t *Table) moveLocked(tab *slots, at int, key uint64, old, port PortID, ps *portState, now, ms int64) Result {
	ops := t.ports[old]
	if ps == nil {
		// The new port is gone (a frame in flight from a removed port):
		// keep the entry where it was.
		t.refused.Add(1)
		return Refused
	}
	if ps.limit > 0 && ps.count >= ps.limit {
		if Policy(t.policy.Load()) == StopLearning || !t.evictLocked(ps, now) {
			// The MAC is no longer behind old; rather flood to it than send
			// it to the wrong port.
			t.deleteLocked(tab, at)
			t.refused.Add(1)
			return Refused
		}
		// The eviction's deletion may have shifted our entry.
		at = tab.find(key)
	}
	if ops != nil {
		t.unlink(tab, ops, int32(at))
		ops.count--
	}
	tab.s[at].val.Store(packVal(port, Learned, ms))
	t.linkTail(tab, ps, int32(at), ms)
	ps.count++
	t.st.Moved++
	fl := t.flaps[key]
	if fl == nil || now-fl.first > int64(FlapWindow) {
		if fl == nil {
			fl = &flapState{}
			t.flaps[key] = fl
		}
		*fl = flapState{first: now, moves: 1}
	} else {
		fl.moves++
	}
	flapping := fl.moves >= FlapMoves
	if flapping {
		t.st.Flaps++
	}
	t.emit(Event{Type: EventMoved, Kind: Learned, Port: port, OldPort: old, Time: now, Flapping: flapping}, key)
	return Moved
}

// fullestLocked is the port holding the most learned entries; ties go to the
// lowest port ID so that runs are reproducible.
func (t *Table) fullestLocked() *portState {
	var best *portState
	var bestID PortID
	for id, ps := range t.ports {
		if ps.count == 0 {
			continue
		}
		if best == nil || ps.count > best.count || (ps.count == best.count && id < bestID) {
			best, bestID = ps, id
		}
	}
	return best
}

// evictLocked removes the least recently used learned entry of ps. Entries
// are queued in the order they were learned; one refreshed since it was
// queued goes to the back instead (second chance), so the entry evicted has
// not been seen since everything ahead of it was queued. That is LRU without
// touching the queue on the lock-free refresh path.
func (t *Table) evictLocked(ps *portState, now int64) bool {
	if ps == nil {
		return false
	}
	tab := t.tab.Load()
	for tries := ps.count; ps.head >= 0; tries-- {
		i := ps.head
		seen := valSeen(tab.s[i].val.Load())
		if l := &tab.l[i]; seen > l.queued && tries > 0 {
			t.unlink(tab, ps, i)
			t.linkTail(tab, ps, i, seen)
			continue
		}
		t.deleteLocked(tab, int(i))
		t.st.Evicted++
		return true
	}
	return false
}

// roomLocked makes sure one more key fits, growing the array when it is
// full, and returns the slot to use.
func (t *Table) roomLocked(key uint64) (*slots, int) {
	tab := t.tab.Load()
	// Look again: an eviction since the caller's probe may have turned the
	// slot just before its free slot empty, and a key placed past an empty
	// slot could never be found.
	_, free := tab.findOrFree(key)
	if free >= 0 && t.live+1 <= tab.full {
		return tab, free
	}
	want := 2 * (t.live + 1)
	statics := t.live - int(t.learned.Load())
	if ceil := int(t.limit.Load()) + statics + 1; want > ceil {
		want = ceil
	}
	tab = t.rehashLocked(max(want, 64))
	_, free = tab.findOrFree(key)
	return tab, free
}

// rehashLocked copies the live entries into a fresh array of room for n
// entries, keeping each port's queue order. A refresh racing with the copy
// may be lost; the entry's next frame refreshes it again.
func (t *Table) rehashLocked(n int) *slots {
	old := t.tab.Load()
	nt := newSlots(max(n, t.live+1))
	ids := make([]PortID, 0, len(t.ports))
	for id := range t.ports {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
	for _, id := range ids {
		ps := t.ports[id]
		i := ps.head
		ps.head, ps.tail = -1, -1
		for i >= 0 {
			next := old.l[i].next
			key := old.s[i].key.Load()
			_, f := nt.findOrFree(key)
			nt.s[f].val.Store(old.s[i].val.Load())
			nt.s[f].key.Store(key)
			nt.used++
			t.linkTail(nt, ps, int32(f), old.l[i].queued)
			i = next
		}
	}
	for i := range old.s {
		key := old.s[i].key.Load()
		if key&occupied == 0 || valKind(old.s[i].val.Load()) == Learned {
			continue
		}
		_, f := nt.findOrFree(key)
		nt.s[f].val.Store(old.s[i].val.Load())
		nt.s[f].key.Store(key)
		nt.used++
	}
	t.tab.Store(nt)
	return nt
}

func (t *Table) placeLocked(tab *slots, at int, key, val uint64) {
	s := &tab.s[at]
	tab.used++
	// Value before key: a reader that sees the key sees its value.
	s.val.Store(val)
	s.key.Store(key)
	t.live++
}

// deleteLocked removes the entry at slot at by backward shifting: entries
// after it in its cluster that may live earlier on their probe path move
// back into the hole, so the table never holds tombstones. Under eviction
// churn (a MAC flood against evict-fair) tombstones would fill the array and
// force a rehash, an allocation, every few thousand inserts.
//
// Readers stay safe: a slot is marked moving before its value is replaced
// and gets its new key only after its new value, so a reader that sees a
// key sees that key's value; at worst a lookup racing with the shift misses
// an entry that is moving and the frame floods.
func (t *Table) deleteLocked(tab *slots, at int) {
	s := &tab.s[at]
	key := s.key.Load()
	v := s.val.Load()
	t.live--
	delete(t.flaps, key)
	if valKind(v) == Learned {
		t.learned.Add(-1)
		if ps := t.ports[valPort(v)]; ps != nil {
			t.unlink(tab, ps, int32(at))
			ps.count--
		}
	} else if ps := t.ports[valPort(v)]; ps != nil {
		ps.fixed--
	}
	hole := uint64(at)
	s.key.Store(moving)
	for j := tab.next(hole); ; j = tab.next(j) {
		k := tab.s[j].key.Load()
		if k == empty {
			break
		}
		// k may fill the hole if the hole lies on its probe path: between
		// its home and where it sits now, cyclically.
		h := tab.home(k)
		if (hole+tab.n-h)%tab.n < (j+tab.n-h)%tab.n {
			t.shiftLocked(tab, j, hole)
			hole = j
		}
	}
	tab.s[hole].key.Store(empty)
	tab.used--
}

// shiftLocked moves the entry at from into the slot to (marked moving) and
// marks from moving; a learned entry keeps its place in its port's queue.
func (t *Table) shiftLocked(tab *slots, from, to uint64) {
	src, dst := &tab.s[from], &tab.s[to]
	k, v := src.key.Load(), src.val.Load()
	dst.val.Store(v)
	dst.key.Store(k)
	src.key.Store(moving)
	if valKind(v) != Learned {
		return
	}
	ps := t.ports[valPort(v)]
	if ps == nil {
		return
	}
	l := tab.l[from]
	tab.l[to] = l
	if l.prev >= 0 {
		tab.l[l.prev].next = int32(to)
	} else {
		ps.head = int32(to)
	}
	if l.next >= 0 {
		tab.l[l.next].prev = int32(to)
	} else {
		ps.tail = int32(to)
	}
}

func (t *Table) linkTail(tab *slots, ps *portState, i int32, queued int64) {
	l := &tab.l[i]
	l.prev, l.next, l.queued = ps.tail, -1, queued
	if ps.tail >= 0 {
		tab.l[ps.tail].next = i
	} else {
		ps.head = i
	}
	ps.tail = i
}

func (t *Table) unlink(tab *slots, ps *portState, i int32) {
	l := &tab.l[i]
	if l.prev >= 0 {
		tab.l[l.prev].next = l.next
	} else {
		ps.head = l.next
	}
	if l.next >= 0 {
		tab.l[l.next].prev = l.prev
	} else {
		ps.tail = l.prev
	}
	l.prev, l.next = -1, -1
}

// AddStatic installs a static or local entry, replacing whatever (vlan, mac)
// had. Static entries never age, never move and do not count against limits.
func (t *Table) AddStatic(vlan uint16, mac MAC, port PortID, k Kind) error {
	if k == Learned {
		return fmt.Errorf("fdb: static entry %s vlan %d: kind must be static or local", mac, vlan)
	}
	if vlan > MaxVLAN {
		return fmt.Errorf("fdb: static entry %s: vlan %d out of range", mac, vlan)
	}
	if mac.IsMulticast() || mac.IsZero() {
		return fmt.Errorf("fdb: static entry %s: not a unicast address", mac)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.ports[port]; !ok {
		return fmt.Errorf("fdb: static entry %s: port %d not registered", mac, port)
	}
	key := pack(vlan, mac[:])
	tab := t.tab.Load()
	if at := tab.find(key); at >= 0 {
		t.deleteLocked(tab, at)
	}
	tab, free := t.roomLocked(key)
	t.placeLocked(tab, free, key, packVal(port, k, 0))
	t.ports[port].fixed++
	t.emit(Event{Type: EventLearned, Kind: k, Port: port}, key)
	return nil
}

// Delete removes (vlan, mac) of any kind; it reports whether it was there.
func (t *Table) Delete(vlan uint16, mac MAC, now int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	key := pack(vlan, mac[:])
	tab := t.tab.Load()
	at := tab.find(key)
	if at < 0 {
		return false
	}
	v := tab.s[at].val.Load()
	t.deleteLocked(tab, at)
	t.st.Flushed++
	t.emit(Event{Type: EventFlushed, Kind: valKind(v), Port: valPort(v), Time: now}, key)
	return true
}

// Age removes learned entries not refreshed for the ageing time and returns
// how many went. Call it now and then (each second is plenty): lookups
// already treat expired entries as misses; Age reclaims their room.
func (t *Table) Age(now int64) int {
	ageing := t.ageing.Load()
	if ageing <= 0 {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	tab := t.tab.Load()
	ms := millis(now)
	n := 0
	// A deletion shifts later entries back into slot i: look at i again.
	for i := 0; i < len(tab.s); {
		s := &tab.s[i]
		key := s.key.Load()
		v := s.val.Load()
		if key&occupied == 0 || valKind(v) != Learned || ms-valSeen(v) < ageing {
			i++
			continue
		}
		t.deleteLocked(tab, i)
		t.st.Aged++
		t.emit(Event{Type: EventAged, Kind: Learned, Port: valPort(v), Time: now}, key)
		n++
	}
	return n
}

// FlushPort removes the learned entries on p.
func (t *Table) FlushPort(p PortID, now int64) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.flushLocked(func(v uint64, _ uint64) bool { return valKind(v) == Learned && valPort(v) == p }, now)
}

// FlushVLAN removes the learned entries of vlan.
func (t *Table) FlushVLAN(vlan uint16, now int64) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.flushLocked(func(v uint64, key uint64) bool {
		vl, _ := unpack(key)
		return valKind(v) == Learned && vl == vlan
	}, now)
}

// FlushAll removes every learned entry.
func (t *Table) FlushAll(now int64) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.flushLocked(func(v uint64, _ uint64) bool { return valKind(v) == Learned }, now)
}

func (t *Table) flushLocked(match func(val, key uint64) bool, now int64) int {
	tab := t.tab.Load()
	n := 0
	// A deletion shifts later entries back into slot i: look at i again.
	for i := 0; i < len(tab.s); {
		s := &tab.s[i]
		key := s.key.Load()
		v := s.val.Load()
		if key&occupied == 0 || !match(v, key) {
			i++
			continue
		}
		t.deleteLocked(tab, i)
		t.st.Flushed++
		t.emit(Event{Type: EventFlushed, Kind: valKind(v), Port: valPort(v), Time: now}, key)
		n++
	}
	return n
}

// Entries returns every entry, sorted by VLAN then MAC, for display.
func (t *Table) Entries() []Entry {
	t.mu.Lock()
	tab := t.tab.Load()
	out := make([]Entry, 0, t.live)
	for i := range tab.s {
		s := &tab.s[i]
		key := s.key.Load()
		if key&occupied == 0 {
			continue
		}
		v := s.val.Load()
		vlan, mac := unpack(key)
		e := Entry{VLAN: vlan, MAC: mac.HardwareAddr(), Port: valPort(v), Kind: valKind(v)}
		if e.Kind == Learned {
			e.LastSeen = valSeen(v) * 1e6
		}
		out = append(out, e)
	}
	t.mu.Unlock()
	sort.Slice(out, func(a, b int) bool {
		if out[a].VLAN != out[b].VLAN {
			return out[a].VLAN < out[b].VLAN
		}
		return string(out[a].MAC) < string(out[b].MAC)
	})
	return out
}

// Len is the number of entries, static ones included.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.live
}

// Stats returns the counters.
func (t *Table) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.st
	s.Entries = t.live
	s.Refused = t.refused.Load()
	s.Limit = int(t.limit.Load())
	s.Capacity = int(t.tab.Load().n)
	return s
}
