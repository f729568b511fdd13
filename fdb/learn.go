package fdb

// The learning policy: what Learn does with a frame's source (refresh,
// insert, move), the limits and what happens at them (stop-learning,
// evict-fair with its per-port LRU queues), flapping, and the events each
// change announces. The slot array (slots.go) stores; this decides.

// portState is a port's part in the policy: its limit, what it holds, and
// the queue of its learned entries, least recently queued first (head and
// tail are slots, -1 when empty; see evictLocked).
type portState struct {
	limit      int // 0: no per-port limit
	count      int // learned entries
	fixed      int // static and local entries
	head, tail int32
}

// flapState counts a MAC's moves since the first of its current window.
type flapState struct {
	first int64
	moves int
}

// Learn records that a frame from (vlan, mac) arrived on port at now.
// Refreshing a known entry takes no lock and, when now has not moved on,
// writes nothing, so two cores seeing one busy MAC do not fight over its
// cache line.
func (t *Table) Learn(vlan uint16, mac []byte, port PortID, now int64) Result {
	return t.LearnKey(MakeKey(vlan, mac), port, now)
}

// LearnKey is Learn for a key made by MakeKey.
func (t *Table) LearnKey(key Key, port PortID, now int64) Result {
	if !key.IsUnicast() {
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
func (t *Table) learnNew(key Key, port PortID, now int64) Result {
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
// A refresh of a live entry of port's, and a static or local source (which
// LearnKey ignores), are answered here; anything else goes the general way
// (LearnKey, then LookupKey: that may have changed or replaced the array).
func (t *Table) LearnLookup(src Key, port PortID, dst Key, now int64) (r Result, out PortID, ok bool) {
	tab := t.tab.Load()
	hs, hd := tab.home(src), tab.home(dst)
	ms := millis(now)
	age := t.ageing.Load()
	// find, spelled out (see find in slots.go),
	// for the source and then the destination.
	var s *slot
	if !tab.wide {
		at := tab.scan(src, hs)
		if !src.IsUnicast() {
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
		if !src.IsUnicast() {
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
	if s.loadKey() != src {
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
		at := tab.scan(dst, hd)
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
		} else if at := tab.scan(dst, hd+lineSlots); at >= 0 {
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
func (t *Table) learnNewThenLookup(src Key, port PortID, dst Key, now int64) (Result, PortID, bool) {
	r := t.learnNew(src, port, now)
	out, ok := t.LookupKey(dst, now)
	return r, out, ok
}

// learnThenLookup is LearnLookup's path for everything but a refresh found
// in its home line.
//
//go:noinline
func (t *Table) learnThenLookup(src Key, port PortID, dst Key, now int64) (Result, PortID, bool) {
	r := t.LearnKey(src, port, now)
	out, ok := t.LookupKey(dst, now)
	return r, out, ok
}

// expired says whether a learned entry's value is past the ageing time.
func (t *Table) expired(v uint64, ms int64) bool {
	a := t.ageing.Load()
	return a > 0 && ms-valSeen(v) >= a
}

func (t *Table) learnLocked(key Key, port PortID, now, ms int64) Result {
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
	tab.place(free, key, packVal(port, Learned, ms))
	t.live++
	t.linkTail(tab, ps, int32(free), ms)
	ps.count++
	t.learned.Add(1)
	t.st.Learned++
	t.emit(Event{Type: EventLearned, Kind: Learned, Port: port, Time: now}, key)
	return Inserted
}

func (t *Table) moveLocked(tab *slots, at int, key Key, old, port PortID, ps *portState, now, ms int64) Result {
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

// linkTail puts slot i at the tail of ps's queue.
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

// unlink takes slot i out of ps's queue.
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

// relinkLocked follows an entry of value v that the array shifted from one
// slot to another (see slots.vacate): a learned entry keeps its place in its
// port's queue.
func (t *Table) relinkLocked(tab *slots, v uint64, from, to uint64) {
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
