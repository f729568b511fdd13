package monitor

import (
	"testing"

	"github.com/tapswitch/tapswitch/fdb"
)

func TestEventStrings(t *testing.T) {
	m := fdb.MAC{2, 0, 10, 244, 0, 5}
	for _, c := range []struct {
		e    Event
		want string
	}{
		{Event{Type: Learned, MAC: &m, VLAN: 1, Port: "pod1"}, "learned 02:00:0a:f4:00:05 vlan 1 port pod1"},
		{Event{Type: Moved, MAC: &m, VLAN: 1, Port: "pod2", OldPort: "pod1", Flapping: true}, "moved 02:00:0a:f4:00:05 vlan 1 port pod2 from pod1 flapping"},
		{Event{Type: Aged, MAC: &m, VLAN: 1, Port: "pod1"}, "aged 02:00:0a:f4:00:05 vlan 1 port pod1"},
		{Event{Type: PortGone, Port: "pod3", Reason: "tap or netns deleted"}, "port pod3 gone: tap or netns deleted"},
		{Event{Type: PortAdded, Port: "pod3", Kind: "pod", PortID: 4}, "port pod3 added (pod, id 4)"},
		{Event{Type: Dropped, Count: 7}, "dropped 7 events (monitor fell behind)"},
	} {
		if got := c.e.String(); got != c.want {
			t.Errorf("%s: got %q, want %q", c.e.Type, got, c.want)
		}
	}
}

func TestHubNeverBlocksAndCountsDrops(t *testing.T) {
	h := NewHub()
	slow := h.Subscribe(2)
	fast := h.Subscribe(100)
	for range 10 {
		h.Publish(Event{Type: Learned}) // must not block on slow
	}
	if got := slow.Dropped(); got != 8 {
		t.Errorf("slow subscriber dropped %d, want 8", got)
	}
	if got := fast.Dropped(); got != 0 || len(fast.C) != 10 {
		t.Errorf("fast subscriber: dropped %d, queued %d; want 0 and 10", got, len(fast.C))
	}
	if h.Dropped() != 8 {
		t.Errorf("hub dropped %d, want 8", h.Dropped())
	}
	h.Unsubscribe(slow)
	if h.Len() != 1 {
		t.Errorf("Len %d after unsubscribe, want 1", h.Len())
	}
	h.Close()
	for range fast.C {
	}
	if _, ok := <-h.Subscribe(1).C; ok {
		t.Error("subscription after Close is open")
	}
}
