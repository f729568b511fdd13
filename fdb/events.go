package fdb

import (
	"sync/atomic"
	"time"
)

// EventType is what happened to an entry.
type EventType uint8

const (
	EventLearned EventType = iota + 1
	EventMoved
	EventAged
	EventFlushed
)

func (e EventType) String() string {
	switch e {
	case EventLearned:
		return "learned"
	case EventMoved:
		return "moved"
	case EventAged:
		return "aged"
	case EventFlushed:
		return "flushed"
	}
	return "unknown"
}

// MarshalText names the type in JSON.
func (e EventType) MarshalText() ([]byte, error) { return []byte(e.String()), nil }

// Event is one change to the table.
type Event struct {
	Type     EventType `json:"type"`
	VLAN     uint16    `json:"vlan"`
	MAC      MAC       `json:"mac"`
	Kind     Kind      `json:"-"`
	Port     PortID    `json:"port"`
	OldPort  PortID    `json:"old_port,omitempty"` // moves only
	Time     int64     `json:"time"`               // clock nanoseconds
	Flapping bool      `json:"flapping,omitempty"` // moves only
}

// Subscription receives events on C. Sends never block the table: when C is
// full the event is dropped and counted, so a slow reader of `tapswitch
// monitor` can never stall learning.
type Subscription struct {
	C       <-chan Event
	c       chan Event
	dropped atomic.Uint64
}

// Dropped is how many events did not fit in C.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Subscribe returns a subscription whose channel holds up to buf events.
func (t *Table) Subscribe(buf int) *Subscription {
	c := make(chan Event, max(buf, 1))
	s := &Subscription{C: c, c: c}
	t.mu.Lock()
	t.subs = append(t.subs, s)
	t.mu.Unlock()
	return s
}

// Unsubscribe stops events to s and closes its channel.
func (t *Table) Unsubscribe(s *Subscription) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, x := range t.subs {
		if x == s {
			t.subs = append(t.subs[:i], t.subs[i+1:]...)
			close(s.c)
			return
		}
	}
}

func (t *Table) emit(e Event, key Key) {
	if len(t.subs) == 0 {
		return
	}
	e.VLAN, e.MAC = key.VLAN(), key.MAC()
	for _, s := range t.subs {
		select {
		case s.c <- e:
		default:
			s.dropped.Add(1)
		}
	}
}

func durationOf(ns int64) time.Duration { return time.Duration(ns) }
