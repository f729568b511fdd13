package daemon

import (
	"github.com/tapswitch/tapswitch/dataplane"
	"github.com/tapswitch/tapswitch/fdb"
	vswitch "github.com/tapswitch/tapswitch/switch"
	"github.com/tapswitch/tapswitch/tap"
)

// link is a pod's or the gateway's port in the dataplane, as the control
// path sees it: its ID on the switch and its device.
type link struct {
	port *dataplane.Port
	id   fdb.PortID
	dev  *tap.Device
}

// dispatcher is how the daemon reads its TAPs: the poller when it spins,
// else a reader goroutine per queue.
func (d *Daemon) dispatcher() dataplane.Dispatcher {
	if d.poller != nil {
		return d.poller
	}
	return dataplane.Readers{Batch: d.cfg.Batch}
}

// startLink makes dev a switch port and starts reading it, reading at most
// rxPPS frames a second (0: no limit). gone is called, once and from a
// goroutine of its own, when the device vanishes under its readers.
func (d *Daemon) startLink(dev *tap.Device, pc vswitch.PortConfig, rxPPS int, gone func(*link, error)) (*link, error) {
	l := &link{dev: dev}
	port, err := dataplane.Start(d.sw, dev, d.dispatcher(), dataplane.Config{
		Port: pc, RxPPS: rxPPS, OnGone: func(err error) { gone(l, err) },
	})
	if err != nil {
		return nil, err
	}
	l.port, l.id = port, port.ID()
	return l, nil
}

// stop closes the device's queues and waits for its readers. The caller
// removes the port from the switch first.
func (l *link) stop() error { return l.port.Close() }
