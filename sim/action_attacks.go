package sim

import (
	"math"
	"net/netip"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tapswitch/tapswitch/fdb"
)

// The attacks: spoof_arp and mac_flood, each its type, ranges, parse,
// build and run, then the sending its events drive.

// SpoofARP sends forged ARP claiming IP is at MAC (default: the sender's own
// MAC), broadcast or, with Target, to one host.
type SpoofARP struct {
	From     string
	IP       netip.Addr
	MAC      string
	Target   string
	Op       uint16 // 1 request (gratuitous), 2 reply
	Count    int
	Interval time.Duration
}

var spoofCount = intRange{1, 1 << 24}

func (*SpoofARP) Kind() string { return "spoof_arp" }

func (a *SpoofARP) parse(p *parser, _ string, v *yaml.Node) {
	f := p.fields(v, "spoof_arp", "from", "ip", "mac", "target", "op", "count", "interval")
	p.need(v, f, "spoof_arp", "from", "ip")
	*a = SpoofARP{From: p.str(f["from"], "from"), IP: p.addr(f["ip"], "ip"), Op: arpReply, Count: 1, Interval: time.Second}
	optional(f, "mac", &a.MAC, p.str)
	optional(f, "target", &a.Target, p.str)
	if x := f["op"]; x != nil {
		switch p.scalar(x, "op") {
		case "request":
			a.Op = arpRequest
		case "reply":
			a.Op = arpReply
		default:
			p.fail(x, "op %q: want request or reply", x.Value)
		}
	}
	p.optRange(f, "count", &a.Count, spoofCount)
	optional(f, "interval", &a.Interval, p.duration)
}

func (a *SpoofARP) build(s *Sim, line int, _ map[string]bool) error {
	sc := s.sc
	hi, h, err := s.fromHost(a.From, line)
	if err != nil {
		return err
	}
	if !a.IP.Is4() {
		return sc.errorf(line, "spoof_arp: ip %v: IPv4 only", a.IP)
	}
	sp := &spoofState{spec: a, host: hi, mac: h.ifs[0].mac, target: -1}
	if a.MAC != "" {
		if sp.mac, err = s.macRef(a.MAC, line); err != nil {
			return err
		}
	}
	if a.Target != "" {
		ti, tifc, err := s.hostRef(a.Target, line)
		if err != nil {
			return err
		}
		sp.target, sp.tmac, sp.tip = ti, s.macOf(ti, tifc), s.hosts[ti].ifs[tifc].ip
	}
	if a.Op != arpRequest && a.Op != arpReply {
		return sc.errorf(line, "spoof_arp: op %d: want 1 (request) or 2 (reply)", a.Op)
	}
	if spoofCount.below(a.Count) || a.Interval < 0 {
		return sc.errorf(line, "spoof_arp: count and interval out of range")
	}
	s.spoofs = append(s.spoofs, sp)
	return nil
}

func (a *SpoofARP) run(s *Sim) {
	for j, sp := range s.spoofs {
		if sp.spec == a {
			s.tr.printf(s, "timeline: %s sends forged ARP: %v is-at %s", a.From, a.IP, sp.mac)
			s.spoofSend(int32(j))
		}
	}
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

// MACFlood sends Count frames at Rate per second from random source MACs
// (drawn from the run's seed), like macof.
type MACFlood struct {
	From     string
	Rate     float64
	Count    int
	RandomTo bool // random unicast destinations; false: broadcast
}

var (
	floodRate  = numRange{0.001, 1e9}
	floodCount = intRange{1, 1 << 26}
)

func (*MACFlood) Kind() string { return "mac_flood" }

func (a *MACFlood) parse(p *parser, _ string, v *yaml.Node) {
	f := p.fields(v, "mac_flood", "from", "rate", "count", "to")
	p.need(v, f, "mac_flood", "from")
	*a = MACFlood{From: p.str(f["from"], "from"), Rate: 1000, Count: 1000, RandomTo: true}
	p.optNumber(f, "rate", &a.Rate, floodRate)
	p.optRange(f, "count", &a.Count, floodCount)
	if x := f["to"]; x != nil {
		switch p.scalar(x, "to") {
		case "random":
			a.RandomTo = true
		case "broadcast":
			a.RandomTo = false
		default:
			p.fail(x, "mac_flood to %q: want random or broadcast", x.Value)
		}
	}
}

func (a *MACFlood) build(s *Sim, line int, _ map[string]bool) error {
	hi, _, err := s.fromHost(a.From, line)
	if err != nil {
		return err
	}
	// As for a flow, the rate is only bounded below (scaled copies).
	if !(a.Rate > 0) || math.IsInf(a.Rate, 0) || floodCount.below(a.Count) {
		return s.sc.errorf(line, "mac_flood: rate and count must be more than 0")
	}
	s.floods = append(s.floods, &floodState{spec: a, host: hi, interval: 1e9 / a.Rate})
	return nil
}

func (a *MACFlood) run(s *Sim) {
	for j, fl := range s.floods {
		if fl.spec == a {
			fl.start = s.now
			s.tr.printf(s, "timeline: %s starts a MAC flood: %d frames at %s/s", a.From, a.Count, FormatNum(a.Rate))
			s.floodSend(int32(j))
		}
	}
}

type floodState struct {
	spec     *MACFlood
	host     int32
	start    int64
	interval float64
	sent     int
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
