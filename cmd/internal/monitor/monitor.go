// Package monitor is the daemon's live event stream, what `tapswitch
// monitor` prints: FDB changes (learned, moved, aged, flushed) and ports
// added, removed or gone. A Hub fans events out to subscribers without ever
// blocking the publisher: a subscriber that falls behind loses events and
// is told how many.
package monitor

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapswitch/tapswitch/fdb"
)

// Event types. The FDB's are fdb.EventType's names.
const (
	Learned     = "learned"
	Moved       = "moved"
	Aged        = "aged"
	Flushed     = "flushed"
	PortAdded   = "port-added"
	PortRemoved = "port-removed" // deleted by an operator (pod del) or at shutdown
	PortGone    = "port-gone"    // its TAP or namespace vanished
	Dropped     = "dropped"      // Count events were lost: the reader (or the daemon's FDB feed) fell behind
)

// Event is one line of the stream (newline-delimited JSON on GET
// /v1/events).
type Event struct {
	Time     time.Time  `json:"time"`
	Type     string     `json:"type"`
	MAC      *fdb.MAC   `json:"mac,omitempty"`
	VLAN     uint16     `json:"vlan,omitempty"`
	Port     string     `json:"port,omitempty"`
	PortID   fdb.PortID `json:"port_id,omitempty"`
	OldPort  string     `json:"old_port,omitempty"` // moves
	Flapping bool       `json:"flapping,omitempty"` // moves
	Kind     string     `json:"kind,omitempty"`     // port events: pod or gateway
	Reason   string     `json:"reason,omitempty"`   // port-gone
	Count    uint64     `json:"count,omitempty"`    // dropped
}

// String renders e the way `bridge monitor` would:
// "learned 02:00:0a:f4:00:05 vlan 1 port pod1", "port pod3 gone: ...".
func (e Event) String() string {
	mac := ""
	if e.MAC != nil {
		mac = e.MAC.String()
	}
	switch e.Type {
	case Learned, Aged, Flushed:
		return fmt.Sprintf("%s %s vlan %d port %s", e.Type, mac, e.VLAN, e.Port)
	case Moved:
		s := fmt.Sprintf("moved %s vlan %d port %s from %s", mac, e.VLAN, e.Port, e.OldPort)
		if e.Flapping {
			s += " flapping"
		}
		return s
	case PortAdded:
		return fmt.Sprintf("port %s added (%s, id %d)", e.Port, e.Kind, e.PortID)
	case PortRemoved:
		return fmt.Sprintf("port %s removed", e.Port)
	case PortGone:
		if e.Reason != "" {
			return fmt.Sprintf("port %s gone: %s", e.Port, e.Reason)
		}
		return fmt.Sprintf("port %s gone", e.Port)
	case Dropped:
		return fmt.Sprintf("dropped %d events (monitor fell behind)", e.Count)
	}
	return e.Type
}

// Hub fans events out to subscribers.
type Hub struct {
	mu     sync.Mutex
	subs   map[*Sub]struct{}
	closed bool
	// dropped counts events lost by all subscribers, for metrics.
	dropped atomic.Uint64
}

// NewHub returns a hub without subscribers.
func NewHub() *Hub { return &Hub{subs: make(map[*Sub]struct{})} }

// Sub is one subscriber. C is closed when the hub closes or the
// subscription is cancelled.
type Sub struct {
	C       <-chan Event
	c       chan Event
	dropped atomic.Uint64
}

// Dropped is how many events did not fit in C.
func (s *Sub) Dropped() uint64 { return s.dropped.Load() }

// Subscribe adds a subscriber whose channel holds up to buf events.
func (h *Hub) Subscribe(buf int) *Sub {
	c := make(chan Event, max(buf, 1))
	s := &Sub{C: c, c: c}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		close(c)
		return s
	}
	h.subs[s] = struct{}{}
	return s
}

// Unsubscribe removes s and closes its channel.
func (h *Hub) Unsubscribe(s *Sub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		close(s.c)
	}
}

// Len is the number of subscribers.
func (h *Hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Publish hands e to every subscriber that has room, and counts it lost
// for the others. It never blocks.
func (h *Hub) Publish(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.c <- e:
		default:
			s.dropped.Add(1)
			h.dropped.Add(1)
		}
	}
}

// Dropped is how many events subscribers lost, in total.
func (h *Hub) Dropped() uint64 { return h.dropped.Load() }

// Close ends every subscription; later ones start closed.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		delete(h.subs, s)
		close(s.c)
	}
}
