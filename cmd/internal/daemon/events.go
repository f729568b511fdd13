package daemon

import (
	"sync"
	"time"

	"github.com/tapswitch/tapswitch/cmd/internal/monitor"
	"github.com/tapswitch/tapswitch/fdb"
)

// dropReport is how often the event feed tells listeners how many FDB
// events the table's subscription could not hold.
const dropReport = 100 * time.Millisecond

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

	nmu     sync.Mutex
	names   map[fdb.PortID]string // every port seen, for events about removed ones
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
	t := time.NewTicker(dropReport)
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
				continue
			}
			if lost := f.sub.Dropped(); lost > f.fdbLost {
				f.hub.Publish(monitor.Event{Time: time.Now(), Type: monitor.Dropped, Count: lost - f.fdbLost})
				f.fdbLost = lost
			}
		}
	}
}

func (f *eventFeed) name(id fdb.PortID) string {
	f.nmu.Lock()
	defer f.nmu.Unlock()
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

// portEvent publishes a port's arrival or departure as it happens; the
// daemon calls it with its lock held, at the moment it adds or removes the
// port. A removal's FDB flushes follow it on the stream.
func (d *Daemon) portEvent(typ, name string, id fdb.PortID, kind, reason string) {
	if d.events == nil {
		return
	}
	if typ == monitor.PortAdded {
		// Remember the name: the flushes of its removal come after the
		// switch has forgotten the port.
		d.events.nmu.Lock()
		d.events.names[id] = name
		d.events.nmu.Unlock()
	}
	if d.events.hub.Len() == 0 {
		return
	}
	d.events.hub.Publish(monitor.Event{Time: time.Now(), Type: typ, Port: name, PortID: id, Kind: kind, Reason: reason})
}

// Events is the daemon's event stream (GET /v1/events).
func (d *Daemon) Events() *monitor.Hub { return d.events.hub }
