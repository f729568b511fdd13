package daemon

import (
	"sync"
	"time"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/cmd/internal/monitor"
	"github.com/tapswitch/tapswitch/fdb"
)

// portPoll is how often the event feed compares the switch's ports with
// the last list it saw, while someone is subscribed.
const portPoll = 100 * time.Millisecond

// fdbEventBuf is the FDB subscription's queue: learning sends into it
// without blocking and drops (counted) when the feed falls behind.
const fdbEventBuf = 4096

// eventFeed turns FDB events and port changes into monitor events on a
// Hub. It runs one goroutine; the frame path only does the FDB's
// non-blocking send when a MAC is learned, moves or ages.
type eventFeed struct {
	d    *Daemon
	hub  *monitor.Hub
	sub  *fdb.Subscription
	stop chan struct{}
	done chan struct{}
	once sync.Once

	names   map[fdb.PortID]string // every port seen, for events about removed ones
	known   map[fdb.PortID]string // the ports of the last poll (nil: no baseline)
	fdbLost uint64                // FDB subscription drops already reported
}

func newEventFeed(d *Daemon) *eventFeed {
	f := &eventFeed{
		d: d, hub: monitor.NewHub(), sub: d.sw.FDB().Subscribe(fdbEventBuf),
		stop: make(chan struct{}), done: make(chan struct{}), names: make(map[fdb.PortID]string),
	}
	go f.run()
	return f
}

// Close stops the feed and ends every subscription.
func (f *eventFeed) Close() {
	f.once.Do(func() {
		close(f.stop)
		<-f.done
		f.d.sw.FDB().Unsubscribe(f.sub)
		f.hub.Close()
	})
}

func (f *eventFeed) run() {
	defer close(f.done)
	t := time.NewTicker(portPoll)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case e, ok := <-f.sub.C:
			if !ok {
				return
			}
			f.fdbEvent(e)
		case <-t.C:
			if f.hub.Len() == 0 {
				f.known = nil // no baseline while nobody listens
				continue
			}
			f.pollPorts()
			if lost := f.sub.Dropped(); lost > f.fdbLost {
				f.hub.Publish(monitor.Event{Time: time.Now(), Type: monitor.Dropped, Count: lost - f.fdbLost})
				f.fdbLost = lost
			}
		}
	}
}

func (f *eventFeed) name(id fdb.PortID) string {
	if n, ok := f.names[id]; ok {
		return n
	}
	if pi, ok := f.d.sw.Port(id); ok {
		f.names[id] = pi.Name
		return pi.Name
	}
	return ""
}

func (f *eventFeed) fdbEvent(e fdb.Event) {
	if f.hub.Len() == 0 {
		return
	}
	mac := e.MAC
	ev := monitor.Event{
		Time: time.Now(), Type: e.Type.String(), MAC: &mac, VLAN: e.VLAN,
		Port: f.name(e.Port), PortID: e.Port, Flapping: e.Flapping,
	}
	if e.Type == fdb.EventMoved {
		ev.OldPort = f.name(e.OldPort)
	}
	f.hub.Publish(ev)
}

// pollPorts publishes the ports added and removed since the last poll.
func (f *eventFeed) pollPorts() {
	now := map[fdb.PortID]string{}
	for _, p := range f.d.sw.Ports() {
		now[p.ID] = p.Name
		f.names[p.ID] = p.Name
	}
	if f.known == nil {
		f.known = now
		return
	}
	for id, name := range f.known {
		if now[id] == name {
			continue
		}
		ev := monitor.Event{Time: time.Now(), Type: monitor.PortRemoved, Port: name, PortID: id}
		ev.Kind, ev.Reason = f.d.portFate(name)
		if ev.Reason != "" {
			ev.Type = monitor.PortGone
		}
		f.hub.Publish(ev)
	}
	for id, name := range now {
		if f.known[id] == name {
			continue
		}
		kind, _ := f.d.portFate(name)
		f.hub.Publish(monitor.Event{Time: time.Now(), Type: monitor.PortAdded, Port: name, PortID: id, Kind: kind})
	}
	f.known = now
}

// portFate says what kind of port name is and, if it is gone, why.
func (d *Daemon) portFate(name string) (kind, gone string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.pods[name]; ok {
		if p.link == nil {
			return api.KindPod, p.reason
		}
		return api.KindPod, ""
	}
	if d.gw != nil && d.gw.name == name {
		return api.KindGateway, d.gw.gone
	}
	return "", ""
}

// Events is the daemon's event stream (GET /v1/events).
func (d *Daemon) Events() *monitor.Hub { return d.events.hub }
