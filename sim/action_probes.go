package sim

import (
	"encoding/binary"
	"math"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tapswitch/tapswitch/fdb"
)

// The probes: ping, arping, flow and stop_flow. Each kind below is its
// type, its ranges, parse, build and run, then the sending and receiving
// that its events drive.

// probeRef names a ping or an arping (they share a namespace in
// assertions).
type probeRef struct {
	arping bool
	i      int32
}

func (s *Sim) fromHost(ref string, line int) (int32, *host, error) {
	hi, _, err := s.hostRef(ref, line)
	if err != nil {
		return 0, nil, err
	}
	return hi, s.hosts[hi], nil
}

// probeEnds resolves the two ends every probe (ping, arping, flow) shares:
// the sending host and the destination address. A probe built by code
// rather than parsed may come unnamed, so it is named "kind from->to" here,
// as Parse would have named it, before any error message quotes the name.
func (s *Sim) probeEnds(kind, from, to string, name *string, line int) (int32, *host, ip4, error) {
	hi, h, err := s.fromHost(from, line)
	if err != nil {
		return 0, nil, 0, err
	}
	dst, err := s.ipRef(to, line)
	if err != nil {
		return 0, nil, 0, err
	}
	if *name == "" {
		*name = kind + " " + from + "->" + to
	}
	return hi, h, dst, nil
}

// parseProbe reads the keys every probe has: from and to (required) and
// name (default "kind from->to").
func (p *parser) parseProbe(v *yaml.Node, f map[string]*yaml.Node, kind string, name, from, to *string) {
	p.need(v, f, kind, "from", "to")
	*from, *to = p.str(f["from"], "from"), p.str(f["to"], "to")
	*name = kind + " " + *from + "->" + *to
	if x := f["name"]; x != nil {
		*name = p.name(x, kind+" name")
	}
}

// Ping sends Count ICMP echo requests, Interval apart. To is an IPv4
// address or a host name.
type Ping struct {
	Name     string
	From, To string
	Count    int
	Interval time.Duration
	Size     int // ICMP payload bytes
	TTL      int
}

var (
	pingCount = intRange{1, 65535} // the sequence number is 16 bits
	pingSize  = intRange{0, 8972}  // a 9000-byte MTU less the IP and ICMP headers
	pingTTL   = intRange{1, 255}
)

// maxPings: a ping's ICMP id is its index plus one, 16 bits.
const maxPings = 65535

func (*Ping) Kind() string { return "ping" }

func (a *Ping) parse(p *parser, _ string, v *yaml.Node) {
	f := p.fields(v, "ping", "name", "from", "to", "count", "interval", "size", "ttl")
	*a = Ping{Count: 1, Interval: time.Second, Size: 56, TTL: defaultTTL}
	p.parseProbe(v, f, "ping", &a.Name, &a.From, &a.To)
	p.optRange(f, "count", &a.Count, pingCount)
	optional(f, "interval", &a.Interval, p.duration)
	p.optRange(f, "size", &a.Size, pingSize)
	p.optRange(f, "ttl", &a.TTL, pingTTL)
}

func (a *Ping) build(s *Sim, line int, _ map[string]bool) error {
	sc := s.sc
	hi, h, dst, err := s.probeEnds("ping", a.From, a.To, &a.Name, line)
	if err != nil {
		return err
	}
	switch {
	case !pingCount.in(a.Count):
		return sc.errorf(line, "ping %q: count %d: want %d-%d", a.Name, a.Count, pingCount.lo, pingCount.hi)
	case pingSize.below(a.Size) || a.Interval < 0 || !pingTTL.in(a.TTL):
		return sc.errorf(line, "ping %q: size, interval and ttl out of range", a.Name)
	case len(s.pings) >= maxPings:
		return sc.errorf(line, "ping %q: at most %d pings per scenario", a.Name, maxPings)
	}
	if _, dup := s.probeByName[a.Name]; dup {
		return sc.errorf(line, "ping %q: the name is taken; give it a name", a.Name)
	}
	if mtu := h.ifs[0].mtu; ipLen+icmpLen+a.Size > mtu {
		return sc.errorf(line, "ping %q: size %d does not fit %s's MTU of %d", a.Name, a.Size, h.name, mtu)
	}
	s.probeByName[a.Name] = probeRef{i: int32(len(s.pings))}
	s.pings = append(s.pings, &pingState{spec: a, host: hi, dst: dst, interval: int64(a.Interval), ttl: -1})
	return nil
}

func (a *Ping) run(s *Sim) {
	s.tr.printf(s, "timeline: %s pings %s (%d x %d bytes)", a.From, a.To, a.Count, a.Size)
	s.pingSend(s.probeByName[a.Name].i, 1)
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

// Arping sends Count ARP requests for To, whether or not it is cached.
type Arping struct {
	Name     string
	From, To string
	Count    int
	Interval time.Duration
}

var arpingCount = intRange{1, 1 << 24}

func (*Arping) Kind() string { return "arping" }

func (a *Arping) parse(p *parser, _ string, v *yaml.Node) {
	f := p.fields(v, "arping", "name", "from", "to", "count", "interval")
	*a = Arping{Count: 1, Interval: time.Second}
	p.parseProbe(v, f, "arping", &a.Name, &a.From, &a.To)
	p.optRange(f, "count", &a.Count, arpingCount)
	optional(f, "interval", &a.Interval, p.duration)
}

func (a *Arping) build(s *Sim, line int, _ map[string]bool) error {
	sc := s.sc
	hi, _, dst, err := s.probeEnds("arping", a.From, a.To, &a.Name, line)
	if err != nil {
		return err
	}
	if arpingCount.below(a.Count) || a.Interval < 0 {
		return sc.errorf(line, "arping %q: count and interval out of range", a.Name)
	}
	if _, dup := s.probeByName[a.Name]; dup {
		return sc.errorf(line, "arping %q: the name is taken; give it a name", a.Name)
	}
	s.probeByName[a.Name] = probeRef{arping: true, i: int32(len(s.arpings))}
	s.arpings = append(s.arpings, &arpingState{spec: a, host: hi, dst: dst, interval: int64(a.Interval)})
	return nil
}

func (a *Arping) run(s *Sim) {
	s.tr.printf(s, "timeline: %s arpings %s", a.From, a.To)
	s.arpingSend(s.probeByName[a.Name].i)
}

type arpingState struct {
	spec     *Arping
	host     int32
	dst      ip4
	interval int64
	sent     int
	replies  int
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

// Flow sends UDP datagrams at Rate per second; Count 0 runs until a
// StopFlow or the end of the run.
type Flow struct {
	Name     string
	From, To string
	Port     int
	Rate     float64
	Size     int // UDP payload bytes, at least 8
	Count    int
}

var (
	flowPort  = intRange{1, 65535}
	flowRate  = numRange{0.001, 1e9}
	flowSize  = intRange{8, 8972} // room for the flow's index and sequence number
	flowCount = intRange{0, 1<<31 - 1}
)

func (*Flow) Kind() string { return "flow" }

func (a *Flow) parse(p *parser, _ string, v *yaml.Node) {
	f := p.fields(v, "flow", "name", "from", "to", "port", "rate", "size", "count")
	*a = Flow{Port: 5001, Rate: 100, Size: 64}
	p.parseProbe(v, f, "flow", &a.Name, &a.From, &a.To)
	p.optRange(f, "port", &a.Port, flowPort)
	p.optNumber(f, "rate", &a.Rate, flowRate)
	p.optRange(f, "size", &a.Size, flowSize)
	p.optRange(f, "count", &a.Count, flowCount)
}

func (a *Flow) build(s *Sim, line int, _ map[string]bool) error {
	sc := s.sc
	hi, h, dst, err := s.probeEnds("flow", a.From, a.To, &a.Name, line)
	if err != nil {
		return err
	}
	// The rate is only bounded below: a scaled copy (sim --time-scale)
	// may go past what a scenario file may ask for.
	switch {
	case a.Rate <= 0 || math.IsInf(a.Rate, 0) || math.IsNaN(a.Rate):
		return sc.errorf(line, "flow %q: rate %v: want more than 0", a.Name, a.Rate)
	case flowSize.below(a.Size) || flowCount.below(a.Count) || !flowPort.in(a.Port):
		return sc.errorf(line, "flow %q: size (at least %d), count or port out of range", a.Name, flowSize.lo)
	case ipLen+udpLen+a.Size > h.ifs[0].mtu:
		return sc.errorf(line, "flow %q: size %d does not fit %s's MTU of %d", a.Name, a.Size, h.name, h.ifs[0].mtu)
	}
	if _, dup := s.flowByName[a.Name]; dup {
		return sc.errorf(line, "flow %q: the name is taken; give it a name", a.Name)
	}
	s.flowByName[a.Name] = int32(len(s.flows))
	s.flows = append(s.flows, &flowState{spec: a, host: hi, dst: dst, interval: 1e9 / a.Rate})
	return nil
}

func (a *Flow) run(s *Sim) {
	fi := s.flowByName[a.Name]
	f := s.flows[fi]
	f.start, f.running = s.now, true
	s.tr.printf(s, "timeline: flow %s starts: %s -> %s udp/%d, %s/s x %d bytes", a.Name, a.From, a.To, a.Port, FormatNum(a.Rate), a.Size)
	s.flowSend(fi)
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

// line is the scenario line of the step that starts f.
func (f *flowState) line(s *Sim) int {
	for _, st := range s.steps {
		if st.Action == Action(f.spec) {
			return st.Line
		}
	}
	return 0
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

// StopFlow stops a flow by name.
type StopFlow struct{ Flow string }

func (*StopFlow) Kind() string { return "stop_flow" }

func (a *StopFlow) parse(p *parser, _ string, v *yaml.Node) {
	a.Flow = p.str(v, "stop_flow")
}

func (a *StopFlow) build(s *Sim, line int, stops map[string]bool) error {
	if _, ok := s.flowByName[a.Flow]; !ok {
		return s.sc.errorf(line, "stop_flow: no flow %q starts before this step", a.Flow)
	}
	stops[a.Flow] = true
	return nil
}

func (a *StopFlow) run(s *Sim) {
	f := s.flows[s.flowByName[a.Flow]]
	f.stopped = true
	s.tr.printf(s, "timeline: flow %s stops after %d datagrams", a.Flow, f.sent)
}
