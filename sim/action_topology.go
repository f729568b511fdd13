package sim

import (
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tapswitch/tapswitch/fdb"
)

// The changes to the topology: move, link_down and link_up, garp and
// remove_port, each its type, parse, build and run.

// Move unplugs a host interface and plugs it into another switch port
// (created, with the old link's settings). The old port stays on its switch
// without a link, so its FDB entries linger until learning moves them or
// they age, unless RemoveOld removes the port (which flushes them). GARP
// makes the host announce itself from the new port.
type Move struct {
	Host      string // host or host:iface
	To        string // switch:port
	RemoveOld bool
	GARP      bool
}

func (*Move) Kind() string { return "move" }

func (a *Move) parse(p *parser, _ string, v *yaml.Node) {
	f := p.fields(v, "move", "host", "to", "remove_old", "garp")
	p.need(v, f, "move", "host", "to")
	*a = Move{Host: p.str(f["host"], "host"), To: p.str(f["to"], "to")}
	if !strings.Contains(a.To, ":") {
		p.fail(f["to"], "move to %q: want switch:port", a.To)
	}
	optional(f, "remove_old", &a.RemoveOld, p.boolean)
	optional(f, "garp", &a.GARP, p.boolean)
}

func (a *Move) build(s *Sim, line int, _ map[string]bool) error {
	sc := s.sc
	hi, ifc, err := s.hostRef(a.Host, line)
	if err != nil {
		return err
	}
	sw, port := splitRef(a.To)
	if _, ok := s.swByName[sw]; !ok || port == "" {
		return sc.errorf(line, "move to %q: want switch:port on an existing switch", a.To)
	}
	if s.knownPort(a.To) {
		return sc.errorf(line, "move to %q: the port is already in use; moves create new ports", a.To)
	}
	s.movedTargets[a.To] = true
	s.hosts[hi].ifs[ifc].moved = true
	return nil
}

// run replugs the host interface into a new port on the switch.
func (a *Move) run(s *Sim) {
	hi, ifc, _ := s.hostRef(a.Host, 0)
	h := s.hosts[hi]
	he := h.ifs[ifc].ep
	swName, portName := splitRef(a.To)
	n := s.switches[s.swByName[swName]]
	var l *link
	var old int32 = -1
	var side uint8
	if li := s.eps[he].link; li >= 0 {
		l = s.links[li]
		side = s.eps[he].side
		old = l.ends[1-side]
	}
	if l == nil {
		spec := LinkSpec{Name: h.ifName(ifc) + "--" + a.To, A: h.ifName(ifc), B: a.To, Latency: DefaultLatency, Bandwidth: DefaultBandwidth, Queue: DefaultQueue}
		l = s.addLink(spec)
		s.plug(he, l, 0)
		side = 0
	}
	e, err := s.addSwitchPort(n, portName, hi, ifc)
	if err != nil {
		s.tr.printf(s, "timeline: move %s to %s failed: %v", h.ifName(ifc), a.To, err)
		return
	}
	if old >= 0 {
		s.unplug(old)
	}
	s.plug(e, l, 1-side)
	s.plug(he, l, side) // the epoch moved on: frames in flight are lost
	what := "unplugged"
	if old >= 0 && a.RemoveOld && s.eps[old].sw >= 0 {
		oe := &s.eps[old]
		if err := s.switches[oe.sw].sw.RemovePort(oe.port); err == nil {
			what = "removed"
		}
	}
	if old >= 0 {
		s.tr.printf(s, "timeline: %s moves from %s (%s) to %s (port %d)", h.ifName(ifc), s.eps[old].portName, what, s.eps[e].portName, s.eps[e].port)
	} else {
		s.tr.printf(s, "timeline: %s plugged into %s (port %d)", h.ifName(ifc), s.eps[e].portName, s.eps[e].port)
	}
	if a.GARP {
		s.garp(h, ifc)
	}
}

// LinkState takes a link down or brings it up. A switch port whose link goes
// down loses its learned entries, as on the Linux bridge.
type LinkState struct {
	Link string
	Up   bool
}

func (*LinkState) Kind() string { return "link" }

// parse reads link_down or link_up: key says which.
func (a *LinkState) parse(p *parser, key string, v *yaml.Node) {
	*a = LinkState{Link: p.str(v, key), Up: key == "link_up"}
}

func (a *LinkState) build(s *Sim, line int, _ map[string]bool) error {
	if _, ok := s.linkByName[a.Link]; !ok {
		return s.sc.errorf(line, "no link named %q", a.Link)
	}
	return nil
}

func (a *LinkState) run(s *Sim) {
	s.setLink(s.links[s.linkByName[a.Link]], a.Up)
}

// setLink takes l down or up. Down drops what is on the wire and, like the
// Linux bridge on carrier loss, flushes the learned entries of switch ports
// at its ends.
func (s *Sim) setLink(l *link, up bool) {
	if l.up == up {
		return
	}
	l.up = up
	l.epoch = s.newEpoch()
	l.dirs = [2]linkDir{}
	if up {
		s.tr.printf(s, "timeline: link %s up", l.name)
		return
	}
	flushed := 0
	for _, e := range l.ends {
		if e >= 0 && s.eps[e].sw >= 0 {
			ep := &s.eps[e]
			flushed += s.switches[ep.sw].sw.FDB().FlushPort(ep.port, s.now)
		}
	}
	s.tr.printf(s, "timeline: link %s down; %d FDB entries flushed", l.name, flushed)
}

// GARP makes a host announce its address (gratuitous ARP request).
type GARP struct{ Host string }

func (*GARP) Kind() string { return "garp" }

func (a *GARP) parse(p *parser, _ string, v *yaml.Node) {
	a.Host = p.str(v, "garp")
}

func (a *GARP) build(s *Sim, line int, _ map[string]bool) error {
	hi, ifc, err := s.hostRef(a.Host, line)
	if err != nil {
		return err
	}
	if s.hosts[hi].ifs[ifc].bits < 0 {
		return s.sc.errorf(line, "garp: %s has no IP address", a.Host)
	}
	return nil
}

func (a *GARP) run(s *Sim) {
	hi, ifc, _ := s.hostRef(a.Host, 0)
	h := s.hosts[hi]
	s.tr.printf(s, "timeline: %s announces itself (gratuitous ARP)", h.ifName(ifc))
	s.garp(h, ifc)
}

func (s *Sim) garp(h *host, ifc int32) {
	f := &h.ifs[ifc]
	if f.bits < 0 {
		return
	}
	s.sendARP(h, ifc, arpRequest, broadcast, f.mac, f.ip, fdb.MAC{}, f.ip)
}

// RemovePort removes a switch port (and its link), flushing its entries.
type RemovePort struct{ Port string } // switch:port

func (*RemovePort) Kind() string { return "remove_port" }

func (a *RemovePort) parse(p *parser, _ string, v *yaml.Node) {
	a.Port = p.str(v, "remove_port")
	if !strings.Contains(a.Port, ":") {
		p.fail(v, "remove_port %q: want switch:port", a.Port)
	}
}

func (a *RemovePort) build(s *Sim, line int, _ map[string]bool) error {
	if !s.knownPort(a.Port) {
		return s.sc.errorf(line, "remove_port: no port %q (want switch:port)", a.Port)
	}
	return nil
}

func (a *RemovePort) run(s *Sim) {
	ref := a.Port
	swName, portName := splitRef(ref)
	n := s.switches[s.swByName[swName]]
	e, ok := n.byName[portName]
	if !ok {
		s.tr.printf(s, "timeline: remove_port %s: no such port (yet)", ref)
		return
	}
	ep := &s.eps[e]
	before := n.sw.FDB().Len()
	if err := n.sw.RemovePort(ep.port); err != nil {
		s.tr.printf(s, "timeline: remove_port %s: %v", ref, err)
		return
	}
	s.unplug(e)
	s.tr.printf(s, "timeline: port %s removed; %d FDB entries flushed", ref, before-n.sw.FDB().Len())
}
