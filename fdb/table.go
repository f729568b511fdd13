package fdb

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
)

// The table: its configuration, ports, lookups, static entries and upkeep
// (ageing, flushes, listing, counters). Where entries are stored is the slot
// array (slots.go); what learning does is the learning policy (learn.go).

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
	flaps  map[Key]*flapState
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
		flaps:  make(map[Key]*flapState),
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
	n := t.flushLocked(func(v uint64, _ Key) bool { return valPort(v) == p }, now)
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
	return t.LookupKey(MakeKey(vlan, mac), now)
}

// LookupKey is Lookup for a key made by MakeKey.
func (t *Table) LookupKey(key Key, now int64) (PortID, bool) {
	tab := t.tab.Load()
	// find, spelled out (see find in slots.go).
	var s *slot
	if !tab.wide {
		at := tab.scan(key, tab.home(key))
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
		} else if at := tab.scan(key, (h+1)*lineSlots); at >= 0 {
			s = &tab.s[at]
		} else {
			return 0, false
		}
	}
	return found(s, key, t.ageing.Load(), millis(now))
}

// roomLocked makes sure one more key fits, growing the array when it is
// full, and returns the slot to use.
func (t *Table) roomLocked(key Key) (*slots, int) {
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
			key := old.s[i].loadKey()
			_, f := nt.findOrFree(key)
			nt.place(f, key, old.s[i].val.Load())
			t.linkTail(nt, ps, int32(f), old.l[i].queued)
			i = next
		}
	}
	for i := range old.s {
		key := old.s[i].loadKey()
		if !key.live() || valKind(old.s[i].val.Load()) == Learned {
			continue
		}
		_, f := nt.findOrFree(key)
		nt.place(f, key, old.s[i].val.Load())
	}
	t.tab.Store(nt)
	return nt
}

// deleteLocked removes the entry at slot at: its accounting (counters, the
// port's queue, flapping state) here, the slot itself by the array's
// backward shift, during which queue links follow the entries shifted.
func (t *Table) deleteLocked(tab *slots, at int) {
	s := &tab.s[at]
	key := s.loadKey()
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
	tab.vacate(at, func(v uint64, from, to uint64) { t.relinkLocked(tab, v, from, to) })
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
	key := MakeKey(vlan, mac[:])
	tab := t.tab.Load()
	if at := tab.find(key); at >= 0 {
		t.deleteLocked(tab, at)
	}
	tab, free := t.roomLocked(key)
	tab.place(free, key, packVal(port, k, 0))
	t.live++
	t.ports[port].fixed++
	t.emit(Event{Type: EventLearned, Kind: k, Port: port}, key)
	return nil
}

// Delete removes (vlan, mac) of any kind; it reports whether it was there.
func (t *Table) Delete(vlan uint16, mac MAC, now int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	key := MakeKey(vlan, mac[:])
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
		key := s.loadKey()
		v := s.val.Load()
		if !key.live() || valKind(v) != Learned || ms-valSeen(v) < ageing {
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
	return t.flushLocked(func(v uint64, _ Key) bool { return valKind(v) == Learned && valPort(v) == p }, now)
}

// FlushVLAN removes the learned entries of vlan.
func (t *Table) FlushVLAN(vlan uint16, now int64) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.flushLocked(func(v uint64, key Key) bool {
		return valKind(v) == Learned && key.VLAN() == vlan
	}, now)
}

// FlushAll removes every learned entry.
func (t *Table) FlushAll(now int64) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.flushLocked(func(v uint64, _ Key) bool { return valKind(v) == Learned }, now)
}

func (t *Table) flushLocked(match func(val uint64, key Key) bool, now int64) int {
	tab := t.tab.Load()
	n := 0
	// A deletion shifts later entries back into slot i: look at i again.
	for i := 0; i < len(tab.s); {
		s := &tab.s[i]
		key := s.loadKey()
		v := s.val.Load()
		if !key.live() || !match(v, key) {
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
		key := s.loadKey()
		if !key.live() {
			continue
		}
		v := s.val.Load()
		e := Entry{VLAN: key.VLAN(), MAC: key.MAC().HardwareAddr(), Port: valPort(v), Kind: valKind(v)}
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
