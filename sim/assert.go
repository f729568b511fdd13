package sim

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tapswitch/tapswitch/fdb"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

// check is an Assertion resolved against the built simulation.
type check struct {
	spec         *Assertion
	kind         string
	probe        probeRef
	all          bool // "*": every ping or every flow
	isFlow       bool
	flow         int32
	sw           int32
	host         int32
	ifc          int32
	mac          fdb.MAC
	ip           ip4
	ft, dir      int
	base0, base1 float64 // counts at Since
	windowed     bool    // the window from Since has started
	judged       bool
	res          AssertionResult
}

// AssertionResult is the verdict on one assertion.
type AssertionResult struct {
	Line int    `json:"line,omitempty"`
	Text string `json:"assertion"`
	Got  string `json:"got"`
	Pass bool   `json:"pass"`
}

func (r AssertionResult) String() string {
	v := "FAIL"
	if r.Pass {
		v = "ok"
	}
	line := ""
	if r.Line > 0 {
		line = fmt.Sprintf("line %d: ", r.Line)
	}
	return fmt.Sprintf("%-4s %s%s (got %s)", v, line, r.Text, r.Got)
}

// counting says whether a kind counts events (and so can take a window).
func counting(kind string) bool {
	switch kind {
	case "delivered", "lost", "duplicates", "frames", "flood_ratio", "switch_stat":
		return true
	}
	return false
}

func (s *Sim) buildCheck(a *Assertion) error {
	sc, line := s.sc, a.Line
	c := &check{spec: a, kind: a.Kind, flow: -1, sw: -1, host: -1}
	if a.HasSince && !counting(a.Kind) {
		return sc.errorf(line, "assertion %s: since applies only to counting checks (delivered, lost, duplicates, frames, flood_ratio, switch_stat)", a.Kind)
	}
	if a.HasAt && a.Kind == "stopped" {
		return sc.errorf(line, "assertion stopped: judged at the end of the run; drop at")
	}
	if a.HasAt && a.HasSince && a.Since > a.At {
		return sc.errorf(line, "assertion: since %v is after at %v", a.Since, a.At)
	}
	if a.Kind != "stopped" && a.Kind != "fdb" && a.Kind != "arp_cache" && a.Kind != "echo_from" && a.Cmp.Op == "" {
		return sc.errorf(line, "assertion %s: no comparison", a.Kind)
	}
	swRef := func() error {
		si, ok := s.swByName[a.Switch]
		if !ok {
			return sc.errorf(line, "assertion %s: no switch named %q", a.Kind, a.Switch)
		}
		c.sw = si
		if a.Port != "" && !s.knownPort(a.Switch+":"+a.Port) {
			return sc.errorf(line, "assertion %s: switch %q has no port %q", a.Kind, a.Switch, a.Port)
		}
		return nil
	}
	switch a.Kind {
	case "delivered", "lost", "duplicates", "ttl":
		switch {
		case a.Flow == "*":
			c.isFlow, c.all = true, true
		case a.Flow != "":
			fi, ok := s.flowByName[a.Flow]
			if !ok {
				return sc.errorf(line, "assertion %s: no flow named %q", a.Kind, a.Flow)
			}
			c.isFlow, c.flow = true, fi
		case a.Ping == "*" && a.Kind != "ttl":
			c.all = true
		default:
			p, ok := s.probeByName[a.Ping]
			if !ok {
				return sc.errorf(line, "assertion %s: no ping or arping named %q", a.Kind, a.Ping)
			}
			if p.arping && a.Kind == "ttl" {
				return sc.errorf(line, "assertion ttl: %q is an arping", a.Ping)
			}
			c.probe = p
		}
	case "frames":
		if !strings.Contains(a.Port, ":") || s.isHost(a.Port) {
			hi, ifc, err := s.hostRef(a.Port, line)
			if err != nil {
				return err
			}
			c.host, c.ifc = hi, ifc
		} else if !s.knownPort(a.Port) {
			return sc.errorf(line, "assertion frames: no port %q (want switch:port or host[:iface])", a.Port)
		}
		c.ft = frameTypeIndex(a.Type)
		if c.ft < 0 {
			c.ft = ftAll
		}
		if e := c.endpoint(s); e >= 0 && c.ft != ftAll && s.eps[e].typed == nil {
			s.eps[e].typed = new([2][numFrameTypes]uint64)
		}
		c.dir = rx
		if a.Dir == "tx" {
			c.dir = tx
		}
	case "fdb":
		if err := swRef(); err != nil {
			return err
		}
		m, err := s.macRef(a.MAC, line)
		if err != nil {
			return err
		}
		c.mac = m
	case "flood_ratio", "switch_stat":
		if err := swRef(); err != nil {
			return err
		}
	case "arp_cache", "echo_from":
		hi, _, err := s.fromHost(a.Host, line)
		if err != nil {
			return err
		}
		c.host, c.ip = hi, ipOf(a.IP)
		if a.MAC != "" {
			if c.mac, err = s.macRef(a.MAC, line); err != nil {
				return err
			}
		}
	case "stopped":
	default:
		return sc.errorf(line, "unknown assertion %q", a.Kind)
	}
	c.res = AssertionResult{Line: line, Text: c.describe()}
	i := int32(len(s.checks))
	s.checks = append(s.checks, c)
	if a.HasSince && a.Since > 0 {
		s.schedule(int64(a.Since), evSnapshot, i, 0, 0)
	}
	if a.HasAt {
		s.schedule(int64(a.At), evAssert, i, 0, 0)
	}
	return nil
}

func (s *Sim) isHost(ref string) bool {
	_, ok := s.hostByName[strings.SplitN(ref, ":", 2)[0]]
	return ok
}

func (c *check) describe() string {
	a := c.spec
	var b strings.Builder
	if a.HasAt {
		fmt.Fprintf(&b, "at %v: ", a.At)
	}
	switch a.Kind {
	case "delivered", "lost", "duplicates", "ttl":
		what := "ping " + a.Ping
		if c.isFlow {
			what = "flow " + a.Flow
		}
		fmt.Fprintf(&b, "%s %s %s", what, a.Kind, a.Cmp)
	case "frames":
		fmt.Fprintf(&b, "%s frames %s on %s %s", a.Type, a.Dir, a.Port, a.Cmp)
	case "fdb":
		if a.Absent {
			fmt.Fprintf(&b, "fdb %s has no %s", a.Switch, a.MAC)
		} else {
			fmt.Fprintf(&b, "fdb %s has %s on %s", a.Switch, a.MAC, a.Port)
		}
		if a.VLAN != 0 {
			fmt.Fprintf(&b, " in vlan %d", a.VLAN)
		}
	case "flood_ratio":
		if a.Port != "" {
			fmt.Fprintf(&b, "flood ratio of %s:%s %s", a.Switch, a.Port, a.Cmp)
		} else {
			fmt.Fprintf(&b, "flood ratio of %s %s", a.Switch, a.Cmp)
		}
	case "switch_stat":
		fmt.Fprintf(&b, "%s %s %s", a.Switch, a.Stat, a.Cmp)
	case "arp_cache":
		if a.Absent {
			fmt.Fprintf(&b, "%s's ARP cache has no %v", a.Host, a.IP)
		} else {
			fmt.Fprintf(&b, "%s's ARP cache maps %v to %s", a.Host, a.IP, a.MAC)
		}
	case "echo_from":
		fmt.Fprintf(&b, "%s answered a ping from %v", a.Host, a.IP)
	case "stopped":
		fmt.Fprintf(&b, "run stopped by %s", a.Reason)
	}
	if a.HasSince {
		fmt.Fprintf(&b, " since %v", a.Since)
	}
	return b.String()
}

// counts returns what a counting check counts now: a number, or for ratios
// a numerator and a denominator.
func (c *check) counts(s *Sim) (float64, float64) {
	switch c.kind {
	case "delivered", "lost", "duplicates":
		var sent, got, dups int
		add := func(x, y, z int) { sent, got, dups = sent+x, got+y, dups+z }
		switch {
		case c.isFlow && c.all:
			for _, f := range s.flows {
				add(f.sent, f.received, f.dups)
			}
		case c.isFlow:
			f := s.flows[c.flow]
			add(f.sent, f.received, f.dups)
		case c.all:
			for _, p := range s.pings {
				add(p.sent, p.received, p.dups)
			}
		case c.probe.arping:
			a := s.arpings[c.probe.i]
			add(a.sent, min(a.replies, a.sent), max(a.replies-a.sent, 0))
		default:
			p := s.pings[c.probe.i]
			add(p.sent, p.received, p.dups)
		}
		switch c.kind {
		case "delivered":
			return float64(got), 0
		case "lost":
			return float64(sent - got), 0
		}
		return float64(dups), 0
	case "frames":
		e := c.endpoint(s)
		if e < 0 {
			return 0, 0
		}
		ep := &s.eps[e]
		if c.ft == ftAll {
			return float64(ep.frames[c.dir]), 0
		}
		if ep.typed == nil {
			return 0, 0
		}
		return float64(ep.typed[c.dir][c.ft]), 0
	case "flood_ratio":
		n := s.switches[c.sw]
		if c.spec.Port == "" {
			return float64(n.flooded), float64(n.rx)
		}
		e, ok := n.byName[c.spec.Port]
		if !ok {
			return 0, 0
		}
		pi, ok := n.sw.Port(s.eps[e].port)
		if !ok {
			return 0, 0
		}
		return float64(pi.Counters.Flooded), float64(pi.Counters.RxFrames)
	case "switch_stat":
		return float64(switchStat(s.switches[c.sw], c.spec.Stat)), 0
	}
	return 0, 0
}

func (c *check) endpoint(s *Sim) int32 {
	if c.host >= 0 {
		return s.hosts[c.host].ifs[c.ifc].ep
	}
	sw, port := splitRef(c.spec.Port)
	if e, ok := s.switches[s.swByName[sw]].byName[port]; ok {
		return e
	}
	return -1
}

func (s *Sim) evaluate(c *check) {
	a := c.spec
	r := &c.res
	c.judged = true
	if a.HasSince && a.Since > 0 && !c.windowed {
		r.Pass, r.Got = false, fmt.Sprintf("nothing: the run ended at %v, before since", time.Duration(s.now))
		return
	}
	switch c.kind {
	case "delivered", "lost", "duplicates", "frames", "switch_stat":
		n, _ := c.counts(s)
		v := n - c.base0
		r.Pass, r.Got = a.Cmp.ok(v), FormatNum(v)
	case "flood_ratio":
		n, d := c.counts(s)
		n, d = n-c.base0, d-c.base1
		ratio := 0.0
		if d > 0 {
			ratio = n / d
		}
		r.Pass, r.Got = a.Cmp.ok(ratio), fmt.Sprintf("%.4f (%s of %s frames flooded)", ratio, FormatNum(n), FormatNum(d))
	case "ttl":
		p := s.pings[c.probe.i]
		r.Pass, r.Got = p.ttl >= 0 && a.Cmp.ok(float64(p.ttl)), fmt.Sprint(p.ttl)
		if p.ttl < 0 {
			r.Got = "no reply"
		}
	case "fdb":
		n := s.switches[c.sw]
		port, found := s.fdbFind(n, c.mac, a.VLAN)
		switch {
		case a.Absent:
			r.Pass = !found
		default:
			r.Pass = found && port == a.Port
		}
		r.Got = "absent"
		if found {
			r.Got = "on " + port
		}
	case "arp_cache":
		h := s.hosts[c.host]
		var mac fdb.MAC
		found := false
		for ifc := range h.ifs {
			if m, ok := s.resolved(h, int32(ifc), c.ip); ok {
				mac, found = m, true
				break
			}
		}
		r.Pass = found != a.Absent && (a.Absent || mac == c.mac)
		r.Got = "no entry"
		if found {
			r.Got = mac.String() + s.whoHas(mac)
		}
	case "echo_from":
		h := s.hosts[c.host]
		r.Pass = false
		for _, x := range h.echoFrom {
			if x == c.ip {
				r.Pass = true
			}
		}
		var from []string
		for _, x := range h.echoFrom {
			from = append(from, x.String())
		}
		sort.Strings(from)
		r.Got = "echo requests from [" + strings.Join(from, " ") + "]"
	case "stopped":
		r.Pass, r.Got = s.stopped == a.Reason, s.stopped
	}
	if a.HasAt && s.tr != nil {
		s.tr.printf(s, "assert %s", r.String())
	}
}

// whoHas names the host owning mac, for readable results.
func (s *Sim) whoHas(mac fdb.MAC) string {
	for _, h := range s.hosts {
		for i := range h.ifs {
			if h.ifs[i].mac == mac {
				return " (" + h.ifName(int32(i)) + ")"
			}
		}
	}
	return ""
}

// fdbFind looks mac up as the switch would now: an entry past its ageing
// time is gone even before the sweep removes it.
func (s *Sim) fdbFind(n *swNode, mac fdb.MAC, vlan uint16) (string, bool) {
	ageing := int64(n.spec.Ageing)
	for _, e := range n.sw.FDB().Entries() {
		if fdb.MACFrom(e.MAC) != mac || (vlan != 0 && e.VLAN != vlan) {
			continue
		}
		if e.Kind == fdb.Learned && ageing > 0 && s.now-e.LastSeen >= ageing {
			continue
		}
		name := n.portName(e.Port)
		_, port := splitRef(name)
		return port, true
	}
	return "", false
}

// switchStats are the switch statistics an assertion can name, in the
// order messages list them, each with how to read it. One table, so a stat
// cannot be accepted by the parser yet read as 0, or the other way round;
// the drop_<reason> stats follow from vswitch.DropReasons.
var switchStats = []struct {
	name string
	get  func(*swNode) uint64
}{
	{"rx", func(n *swNode) uint64 { return n.rx }},
	{"tx", func(n *swNode) uint64 { return n.copies }},
	{"flooded", func(n *swNode) uint64 { return n.flooded }},
	{"unknown", func(n *swNode) uint64 { return n.unknown }},
	{"dropped", func(n *swNode) uint64 { return n.dropped }},
	{"fdb_entries", func(n *swNode) uint64 { return uint64(n.sw.FDB().Stats().Entries) }},
	{"fdb_learned", func(n *swNode) uint64 { return n.sw.FDB().Stats().Learned }},
	{"fdb_moved", func(n *swNode) uint64 { return n.sw.FDB().Stats().Moved }},
	{"fdb_flaps", func(n *swNode) uint64 { return n.sw.FDB().Stats().Flaps }},
	{"fdb_aged", func(n *swNode) uint64 { return n.sw.FDB().Stats().Aged }},
	{"fdb_evicted", func(n *swNode) uint64 { return n.sw.FDB().Stats().Evicted }},
	{"fdb_refused", func(n *swNode) uint64 { return n.sw.FDB().Stats().Refused }},
	{"fdb_flushed", func(n *swNode) uint64 { return n.sw.FDB().Stats().Flushed }},
	{"arp_neighbours", func(n *swNode) uint64 { return uint64(n.sw.ARP().Stats().Neighbours) }},
	{"arp_snooped", func(n *swNode) uint64 { return n.sw.ARP().Stats().Snooped }},
	{"arp_suppressed", func(n *swNode) uint64 { return n.sw.ARP().Stats().Suppressed }},
	{"arp_guard_drops", func(n *swNode) uint64 { return n.sw.ARP().Stats().GuardDrops }},
}

func statNames() []string {
	var out []string
	for _, st := range switchStats {
		out = append(out, st.name)
	}
	for _, r := range vswitch.DropReasons() {
		out = append(out, "drop_"+strings.ReplaceAll(r.String(), "-", "_"))
	}
	return out
}

func knownStat(name string) bool {
	for _, n := range statNames() {
		if n == name {
			return true
		}
	}
	return false
}

func switchStat(n *swNode, name string) uint64 {
	for _, st := range switchStats {
		if st.name == name {
			return st.get(n)
		}
	}
	if reason, ok := strings.CutPrefix(name, "drop_"); ok {
		reason = strings.ReplaceAll(reason, "_", "-")
		var sum uint64
		for _, p := range n.sw.Ports() {
			for _, r := range vswitch.DropReasons() {
				if r.String() == reason {
					sum += p.Counters.Drops[r]
				}
			}
		}
		return sum
	}
	return 0
}
