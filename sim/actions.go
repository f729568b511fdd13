package sim

import (
	"encoding/binary"
	"math"

	"github.com/tapswitch/tapswitch/fdb"
)

// probeRef names a ping or an arping (they share a namespace in
// assertions).
type probeRef struct {
	arping bool
	i      int32
}

type pingState struct {
	spec     *Ping
	host     int32
	dst      ip4
	interval int64
	sent     int
	received int
	dups     int
	errors   int
	seen     []uint64
	rttMin   int64
	rttMax   int64
	rttSum   int64
	ttl      int // of the last reply; -1: none
}

type arpingState struct {
	spec     *Arping
	host     int32
	dst      ip4
	interval int64
	sent     int
	replies  int
}

type flowState struct {
	spec     *Flow
	host     int32
	dst      ip4
	start    int64
	interval float64 // ns
	sent     int
	received int
	dups     int
	seen     []uint64
	stopped  bool
	running  bool
}

type floodState struct {
	spec     *MACFlood
	host     int32
	start    int64
	interval float64
	sent     int
}

type spoofState struct {
	spec   *SpoofARP
	host   int32
	mac    fdb.MAC
	target int32 // host, -1: broadcast
	tmac   fdb.MAC
	tip    ip4
	sent   int
}

// mark sets bit i of a growing bitset and reports whether it was clear.
func mark(set *[]uint64, i int) bool {
	w := i >> 6
	for len(*set) <= w {
		*set = append(*set, 0)
	}
	bit := uint64(1) << (i & 63)
	if (*set)[w]&bit != 0 {
		return false
	}
	(*set)[w] |= bit
	return true
}

func (s *Sim) runStep(i int) {
	st := &s.steps[i]
	switch a := st.Action.(type) {
	case *Ping:
		s.tr.printf(s, "timeline: %s pings %s (%d x %d bytes)", a.From, a.To, a.Count, a.Size)
		s.pingSend(s.probeByName[a.Name].i, 1)
	case *Arping:
		s.tr.printf(s, "timeline: %s arpings %s", a.From, a.To)
		s.arpingSend(s.probeByName[a.Name].i)
	case *Flow:
		fi := s.flowByName[a.Name]
		f := s.flows[fi]
		f.start, f.running = s.now, true
		s.tr.printf(s, "timeline: flow %s starts: %s -> %s udp/%d, %s/s x %d bytes", a.Name, a.From, a.To, a.Port, fmtNum(a.Rate), a.Size)
		s.flowSend(fi)
	case *StopFlow:
		f := s.flows[s.flowByName[a.Flow]]
		f.stopped = true
		s.tr.printf(s, "timeline: flow %s stops after %d datagrams", a.Flow, f.sent)
	case *MACFlood:
		for j, fl := range s.floods {
			if fl.spec == a {
				fl.start = s.now
				s.tr.printf(s, "timeline: %s starts a MAC flood: %d frames at %s/s", a.From, a.Count, fmtNum(a.Rate))
				s.floodSend(int32(j))
			}
		}
	case *SpoofARP:
		for j, sp := range s.spoofs {
			if sp.spec == a {
				s.tr.printf(s, "timeline: %s sends forged ARP: %v is-at %s", a.From, a.IP, sp.mac)
				s.spoofSend(int32(j))
			}
		}
	case *LinkState:
		s.setLink(s.links[s.linkByName[a.Link]], a.Up)
	case *GARP:
		hi, ifc, _ := s.hostRef(a.Host, 0)
		h := s.hosts[hi]
		s.tr.printf(s, "timeline: %s announces itself (gratuitous ARP)", h.ifName(ifc))
		s.garp(h, ifc)
	case *Move:
		s.move(st, a)
	case *RemovePort:
		s.removePort(a.Port)
	}
}

func (s *Sim) pingSend(pi int32, seq uint16) {
	p := s.pings[pi]
	h := s.hosts[p.host]
	n := icmpLen + p.spec.Size
	buf, ifc, nh, ok := s.sendIP(h, p.dst, protoICMP, uint8(p.spec.TTL), n)
	p.sent++
	if ok {
		b := s.pool.bytes(buf)[ethLen+ipLen:]
		pay := b[icmpLen:]
		fill(pay)
		if len(pay) >= 8 {
			binary.BigEndian.PutUint64(pay, uint64(s.now))
		}
		putICMPEcho(b, icmpEcho, uint16(pi+1), seq, p.spec.Size)
		if s.tr != nil {
			s.tr.printf(s, "%s: echo request to %v seq %d", h.name, p.dst, seq)
		}
		s.output(h, ifc, nh, buf)
	} else {
		p.errors++
		s.tr.printf(s, "%s: ping %v: no route", h.name, p.dst)
	}
	if int(seq) < p.spec.Count {
		s.schedule(s.now+p.interval, evPing, pi, uint32(seq)+1, 0)
	}
}

func (s *Sim) pingReply(h *host, src ip4, id, seq uint16, ttl uint8, pay []byte) {
	pi := int(id) - 1
	if pi < 0 || pi >= len(s.pings) {
		return
	}
	p := s.pings[pi]
	if p.host != h.idx || p.dst != src || seq == 0 || int(seq) > p.spec.Count {
		return
	}
	if !mark(&p.seen, int(seq)) {
		p.dups++
		return
	}
	p.received++
	p.ttl = int(ttl)
	rtt := int64(-1)
	if len(pay) >= 8 {
		rtt = s.now - int64(binary.BigEndian.Uint64(pay))
		if p.received == 1 || rtt < p.rttMin {
			p.rttMin = rtt
		}
		p.rttMax = max(p.rttMax, rtt)
		p.rttSum += rtt
	}
	if s.tr != nil {
		s.tr.printf(s, "%s: echo reply from %v seq %d ttl %d time %s", h.name, src, seq, ttl, fmtDur(rtt))
	}
}

func (s *Sim) pingError(h *host, from ip4, typ uint8, id, seq uint16) {
	pi := int(id) - 1
	if pi < 0 || pi >= len(s.pings) || s.pings[pi].host != h.idx {
		return
	}
	s.pings[pi].errors++
	what := "time exceeded"
	if typ == icmpUnreach {
		what = "destination unreachable"
	}
	s.tr.printf(s, "%s: ping seq %d: %s from %v", h.name, seq, what, from)
}

func (s *Sim) arpingSend(ai int32) {
	a := s.arpings[ai]
	h := s.hosts[a.host]
	ifc, ok := h.onLink(a.dst)
	if !ok {
		ifc = 0
	}
	f := &h.ifs[ifc]
	a.sent++
	s.sendARP(h, ifc, arpRequest, broadcast, f.mac, f.ip, fdb.MAC{}, a.dst)
	if a.sent < a.spec.Count {
		s.schedule(s.now+a.interval, evArping, ai, 0, 0)
	}
}

func (s *Sim) flowSend(fi int32) {
	f := s.flows[fi]
	if f.stopped {
		return
	}
	h := s.hosts[f.host]
	n := udpLen + f.spec.Size
	buf, ifc, nh, ok := s.sendIP(h, f.dst, protoUDP, defaultTTL, n)
	seq := f.sent
	f.sent++
	if ok {
		b := s.pool.bytes(buf)[ethLen+ipLen:]
		pay := b[udpLen:]
		fill(pay)
		binary.BigEndian.PutUint32(pay[0:], uint32(fi))
		binary.BigEndian.PutUint32(pay[4:], uint32(seq))
		putUDP(b, 40000+uint16(fi%20000), uint16(f.spec.Port), f.spec.Size)
		s.output(h, ifc, nh, buf)
	}
	if f.spec.Count == 0 || f.sent < f.spec.Count {
		s.schedule(f.start+int64(math.Round(float64(f.sent)*f.interval)), evFlow, fi, 0, 0)
	}
}

func (s *Sim) flowReceive(h *host, dst ip4, port uint16, pay []byte) {
	fi := int(binary.BigEndian.Uint32(pay[0:]))
	if fi >= len(s.flows) {
		return
	}
	f := s.flows[fi]
	if f.dst != dst || uint16(f.spec.Port) != port {
		return
	}
	if mark(&f.seen, int(binary.BigEndian.Uint32(pay[4:]))) {
		f.received++
	} else {
		f.dups++
	}
}

func (s *Sim) floodSend(i int32) {
	fl := s.floods[i]
	h := s.hosts[fl.host]
	buf := s.pool.get(60)
	b := s.pool.bytes(buf)
	src := s.randomMAC()
	dst := broadcast
	if fl.spec.RandomTo {
		dst = s.randomMAC()
	}
	putEth(b, dst, src, etherFlood)
	fill(b[ethLen:])
	s.transmit(h.ifs[0].ep, buf)
	fl.sent++
	if fl.sent < fl.spec.Count {
		s.schedule(fl.start+int64(math.Round(float64(fl.sent)*fl.interval)), evFlood, i, 0, 0)
	} else {
		s.tr.printf(s, "%s: MAC flood done, %d frames", h.name, fl.sent)
	}
}

// randomMAC draws a locally administered unicast address from the run's RNG.
func (s *Sim) randomMAC() fdb.MAC {
	r := s.rng.Uint64()
	m := fdb.MAC{byte(r >> 40), byte(r >> 32), byte(r >> 24), byte(r >> 16), byte(r >> 8), byte(r)}
	m[0] = m[0]&^1 | 2
	return m
}

func (s *Sim) spoofSend(i int32) {
	sp := s.spoofs[i]
	h := s.hosts[sp.host]
	ip := ipOf(sp.spec.IP)
	dst, tha, tpa := broadcast, fdb.MAC{}, ip
	if sp.spec.Op == arpReply {
		tha = broadcast
	}
	if sp.target >= 0 {
		dst, tha, tpa = sp.tmac, sp.tmac, sp.tip
	}
	buf := s.pool.get(ethLen + arpLen)
	b := s.pool.bytes(buf)
	putEth(b, dst, sp.mac, etherARP)
	putARP(b[ethLen:], sp.spec.Op, sp.mac, ip, tha, tpa)
	s.transmit(h.ifs[0].ep, buf)
	sp.sent++
	if sp.sent < sp.spec.Count {
		s.schedule(s.now+int64(sp.spec.Interval), evSpoof, i, 0, 0)
	}
}

func (s *Sim) garp(h *host, ifc int32) {
	f := &h.ifs[ifc]
	if f.bits < 0 {
		return
	}
	s.sendARP(h, ifc, arpRequest, broadcast, f.mac, f.ip, fdb.MAC{}, f.ip)
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

// move replugs a host interface into a new port on a switch.
func (s *Sim) move(st *Step, a *Move) {
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

func (s *Sim) removePort(ref string) {
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
