package sim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tapswitch/tapswitch/fdb"
)

// Parse reads a scenario from YAML. file names the source in errors
// ("node.yaml:12: unknown key \"latncy\" in link"). Unknown keys, bad values
// and duplicate names are errors; so, when the scenario is built (New), are
// references to things that do not exist and impossible topologies.
func Parse(file string, data []byte) (*Scenario, error) {
	root, err := parseYAML(file, data)
	if err != nil {
		return nil, err
	}
	return parseNode(file, root)
}

// parseYAML reads the one YAML document of a scenario and returns its root.
func parseYAML(file string, data []byte) (*yaml.Node, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: file, Msg: "empty scenario"}
		}
		return nil, &Error{File: file, Line: yamlErrLine(err), Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{File: file, Line: extra.Line, Msg: "one YAML document expected"}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	return root, nil
}

// parseNode turns a scenario's YAML tree into a Scenario. It only reads
// the tree, so sweeps parse one tree on several goroutines.
func parseNode(file string, root *yaml.Node) (sc *Scenario, err error) {
	p := &parser{file: file}
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(*Error)
			if !ok {
				panic(r)
			}
			sc, err = nil, e
		}
	}()
	return p.scenario(root), nil
}

// yamlErrLine digs the line out of a yaml.v3 syntax error ("yaml: line 3: ...").
func yamlErrLine(err error) int {
	s := err.Error()
	if i := strings.Index(s, "line "); i >= 0 {
		j := i + 5
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if n, e := strconv.Atoi(s[i+5 : j]); e == nil {
			return n
		}
	}
	return 0
}

type parser struct{ file string }

func (p *parser) fail(n *yaml.Node, format string, args ...any) {
	panic(&Error{File: p.file, Line: n.Line, Msg: fmt.Sprintf(format, args...)})
}

// fields checks that n is a mapping whose keys are all in allowed, once
// each, and returns the values by key.
func (p *parser) fields(n *yaml.Node, what string, allowed ...string) map[string]*yaml.Node {
	n = p.deref(n)
	if n.Kind != yaml.MappingNode {
		p.fail(n, "%s: want a mapping, got %s", what, kindName(n))
	}
	out := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.fail(k, "%s: keys must be plain words", what)
		}
		known := false
		for _, a := range allowed {
			if a == k.Value {
				known = true
				break
			}
		}
		if !known {
			p.fail(k, "unknown key %q in %s (known: %s)", k.Value, what, strings.Join(allowed, ", "))
		}
		if _, dup := out[k.Value]; dup {
			p.fail(k, "key %q given twice in %s", k.Value, what)
		}
		out[k.Value] = p.deref(v)
	}
	return out
}

// optional sets *dst from the key's value, read by parse, when the key is
// given, and otherwise leaves the default already in *dst. Most keys are
// optional with a default, and spelling that out per key was three lines of
// boilerplate each; keys whose error messages name them differently from
// the key, or that need more checks, keep their own code.
func optional[T any](f map[string]*yaml.Node, key string, dst *T, parse func(*yaml.Node, string) T) {
	if v := f[key]; v != nil {
		*dst = parse(v, key)
	}
}

// optInt is optional for whole numbers in lo-hi.
func (p *parser) optInt(f map[string]*yaml.Node, key string, dst *int, lo, hi int64) {
	if v := f[key]; v != nil {
		*dst = int(p.integer(v, key, lo, hi))
	}
}

func (p *parser) deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}

func (p *parser) list(n *yaml.Node, what string) []*yaml.Node {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.fail(n, "%s: want a list, got %s", what, kindName(n))
	}
	out := make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		out[i] = p.deref(c)
	}
	return out
}

func (p *parser) scalar(n *yaml.Node, what string) string {
	if n.Kind != yaml.ScalarNode {
		p.fail(n, "%s: want a value, got %s", what, kindName(n))
	}
	return n.Value
}

func (p *parser) str(n *yaml.Node, what string) string {
	s := p.scalar(n, what)
	if s == "" || n.Tag == "!!null" {
		p.fail(n, "%s: must not be empty", what)
	}
	return s
}

// name is a str fit to name things in references: no spaces or colons.
func (p *parser) name(n *yaml.Node, what string) string {
	s := p.str(n, what)
	if strings.ContainsAny(s, ": \t*") {
		p.fail(n, "%s %q: names may not contain spaces, colons or '*'", what, s)
	}
	return s
}

func (p *parser) boolean(n *yaml.Node, what string) bool {
	switch p.scalar(n, what) {
	case "true", "yes", "on":
		return true
	case "false", "no", "off":
		return false
	}
	p.fail(n, "%s %q: want true or false", what, n.Value)
	return false
}

func (p *parser) integer(n *yaml.Node, what string, lo, hi int64) int64 {
	s := strings.ReplaceAll(p.scalar(n, what), "_", "")
	v, err := strconv.ParseInt(s, 0, 64)
	if err != nil {
		p.fail(n, "%s %q: want a whole number", what, n.Value)
	}
	if v < lo || v > hi {
		p.fail(n, "%s %d: want %d-%d", what, v, lo, hi)
	}
	return v
}

func (p *parser) number(n *yaml.Node, what string, lo, hi float64) float64 {
	s := strings.ReplaceAll(p.scalar(n, what), "_", "")
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		p.fail(n, "%s %q: want a number", what, n.Value)
	}
	if v < lo || v > hi {
		p.fail(n, "%s %s: want %s-%s", what, n.Value, FormatNum(lo), FormatNum(hi))
	}
	return v
}

// maxDuration keeps simulated time far from int64 overflow: a century.
const maxDuration = 100 * 365 * 24 * time.Hour

func (p *parser) duration(n *yaml.Node, what string) time.Duration {
	s := p.scalar(n, what)
	if s == "0" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		p.fail(n, "%s %q: want a duration such as 10us, 1.5s or 5m", what, s)
	}
	if d < 0 || d > maxDuration {
		p.fail(n, "%s %q: want 0-%v", what, s, maxDuration)
	}
	return d
}

// ageing accepts a duration, or 0 / never for no ageing.
func (p *parser) ageing(n *yaml.Node, what string) time.Duration {
	if p.scalar(n, what) == "never" {
		return 0
	}
	return p.duration(n, what)
}

var bandwidthUnits = []struct {
	suffix string
	mult   float64
}{
	{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1},
	{"gbps", 1e9}, {"mbps", 1e6}, {"kbps", 1e3}, {"bps", 1},
}

func (p *parser) bandwidth(n *yaml.Node, what string) int64 {
	s := strings.ToLower(strings.ReplaceAll(p.scalar(n, what), "_", ""))
	if s == "unlimited" || s == "0" {
		return 0
	}
	mult := 1.0
	for _, u := range bandwidthUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 || v*mult < 1000 || v*mult > 1e15 {
		p.fail(n, "%s %q: want bits per second such as 10Gbit, 100Mbit or unlimited (at least 1kbit)", what, n.Value)
	}
	return int64(v * mult)
}

func (p *parser) probability(n *yaml.Node, what string) float64 {
	s := p.scalar(n, what)
	if strings.HasSuffix(s, "%") {
		v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		if err != nil || v < 0 || v > 100 {
			p.fail(n, "%s %q: want 0%%-100%%", what, s)
		}
		return v / 100
	}
	return p.number(n, what, 0, 1)
}

func (p *parser) addr(n *yaml.Node, what string) netip.Addr {
	s := p.scalar(n, what)
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		p.fail(n, "%s %q: want an IPv4 address", what, s)
	}
	return a
}

func (p *parser) prefix(n *yaml.Node, what string) netip.Prefix {
	s := p.scalar(n, what)
	if !strings.Contains(s, "/") {
		p.fail(n, "%s %q: want an address with its prefix length, such as 10.244.0.2/24", what, s)
	}
	pf, err := netip.ParsePrefix(s)
	if err != nil || !pf.Addr().Is4() {
		p.fail(n, "%s %q: want an IPv4 address with its prefix length", what, s)
	}
	return pf
}

func (p *parser) mac(n *yaml.Node, what string) fdb.MAC {
	m, err := fdb.ParseMAC(p.scalar(n, what))
	if err != nil {
		p.fail(n, "%s: %v", what, err)
	}
	if m.IsMulticast() || m.IsZero() {
		p.fail(n, "%s %s: want a unicast address", what, m)
	}
	return m
}

func (p *parser) vlan(n *yaml.Node, what string) uint16 {
	return uint16(p.integer(n, what, 1, fdb.MaxVLAN-1))
}

func (p *parser) scenario(n *yaml.Node) *Scenario {
	f := p.fields(n, "scenario", "name", "description", "seed", "run", "switches", "hosts", "links", "timeline", "assert")
	sc := &Scenario{
		File: p.file, Seed: 1,
		Run: RunSpec{MaxEvents: DefaultMaxEvents, MaxFrames: DefaultMaxFrames, Tick: DefaultTick},
	}
	optional(f, "name", &sc.Name, p.str)
	optional(f, "description", &sc.Description, p.scalar)
	if v := f["seed"]; v != nil {
		s := strings.ReplaceAll(p.scalar(v, "seed"), "_", "")
		u, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			p.fail(v, "seed %q: want a whole number", v.Value)
		}
		sc.Seed = u
	}
	if v := f["run"]; v != nil {
		r := p.fields(v, "run", "duration", "max_events", "max_frames", "tick")
		if x := r["duration"]; x != nil {
			sc.Run.Duration = p.duration(x, "run duration")
		}
		if x := r["max_events"]; x != nil {
			sc.Run.MaxEvents = uint64(p.integer(x, "max_events", 1, math.MaxInt64))
		}
		p.optInt(r, "max_frames", &sc.Run.MaxFrames, 1, 1<<30)
		if x := r["tick"]; x != nil {
			sc.Run.Tick = p.duration(x, "tick")
			if sc.Run.Tick < time.Millisecond {
				p.fail(x, "tick %v: want at least 1ms", sc.Run.Tick)
			}
		}
	}
	names := map[string]string{} // host and switch names share one space
	if v := f["switches"]; v != nil {
		for _, s := range p.list(v, "switches") {
			sw := p.switchSpec(s)
			if what, dup := names[sw.Name]; dup {
				p.fail(s, "switch %q: the name is taken by a %s", sw.Name, what)
			}
			names[sw.Name] = "switch"
			sc.Switches = append(sc.Switches, sw)
		}
	}
	if v := f["hosts"]; v != nil {
		for _, h := range p.list(v, "hosts") {
			hs := p.host(h)
			if what, dup := names[hs.Name]; dup {
				p.fail(h, "host %q: the name is taken by a %s", hs.Name, what)
			}
			names[hs.Name] = "host"
			sc.Hosts = append(sc.Hosts, hs)
		}
	}
	links := map[string]bool{}
	if v := f["links"]; v != nil {
		for _, l := range p.list(v, "links") {
			ls := p.link(l)
			if links[ls.Name] {
				p.fail(l, "link %q: name given twice (links between the same ends need a name each)", ls.Name)
			}
			links[ls.Name] = true
			sc.Links = append(sc.Links, ls)
		}
	}
	if v := f["timeline"]; v != nil {
		for _, s := range p.list(v, "timeline") {
			sc.Timeline = append(sc.Timeline, p.step(s))
		}
	}
	if v := f["assert"]; v != nil {
		for _, a := range p.list(v, "assert") {
			sc.Assertions = append(sc.Assertions, p.assertion(a))
		}
	}
	return sc
}

func (p *parser) switchSpec(n *yaml.Node) SwitchSpec {
	f := p.fields(n, "switch", "name", "ageing", "table_limit", "port_limit", "policy", "arp", "mtu", "ports")
	sw := SwitchSpec{
		Line: n.Line, Ageing: fdb.DefaultAgeing, TableLimit: fdb.DefaultLimit,
		Policy: fdb.StopLearning, ARPAgeing: fdb.DefaultAgeing, MTU: 1500,
	}
	if f["name"] == nil {
		p.fail(n, "switch: name is required")
	}
	sw.Name = p.name(f["name"], "switch name")
	optional(f, "ageing", &sw.Ageing, p.ageing)
	p.optInt(f, "table_limit", &sw.TableLimit, 1, 1<<26)
	p.optInt(f, "port_limit", &sw.PortLimit, 0, 1<<26)
	if v := f["policy"]; v != nil {
		pol, err := fdb.ParsePolicy(p.scalar(v, "policy"))
		if err != nil {
			p.fail(v, "%v", err)
		}
		sw.Policy = pol
	}
	if v := f["arp"]; v != nil {
		a := p.fields(v, "switch arp", "suppress", "guard", "ageing")
		optional(a, "suppress", &sw.Suppress, p.boolean)
		optional(a, "guard", &sw.Guard, p.boolean)
		if x := a["ageing"]; x != nil {
			sw.ARPAgeing = p.ageing(x, "arp ageing")
		}
	}
	p.optInt(f, "mtu", &sw.MTU, 68, 9000)
	if v := f["ports"]; v != nil {
		seen := map[string]bool{}
		for _, pn := range p.list(v, "ports") {
			ps := p.port(pn)
			if seen[ps.Name] {
				p.fail(pn, "port %q: given twice on switch %q", ps.Name, sw.Name)
			}
			seen[ps.Name] = true
			sw.Ports = append(sw.Ports, ps)
		}
	}
	return sw
}

func (p *parser) port(n *yaml.Node) PortSpec {
	f := p.fields(n, "port", "name", "vlan", "trunk", "allowed", "hairpin", "fdb_limit", "ips", "storm", "mtu", "lock_mac", "rx_pps")
	if f["name"] == nil {
		p.fail(n, "port: name is required")
	}
	ps := PortSpec{Line: n.Line, Name: p.name(f["name"], "port name")}
	optional(f, "vlan", &ps.VLAN, p.vlan)
	optional(f, "trunk", &ps.Trunk, p.boolean)
	if v := f["allowed"]; v != nil {
		for _, x := range p.list(v, "allowed") {
			ps.Allowed = append(ps.Allowed, p.vlan(x, "allowed vlan"))
		}
		if !ps.Trunk {
			p.fail(v, "port %q: allowed VLANs need trunk: true", ps.Name)
		}
	}
	if ps.Trunk && ps.VLAN == 0 && len(ps.Allowed) == 0 {
		p.fail(n, "port %q: a trunk needs allowed VLANs or a native vlan", ps.Name)
	}
	optional(f, "hairpin", &ps.Hairpin, p.boolean)
	p.optInt(f, "fdb_limit", &ps.FDBLimit, 0, 1<<26)
	if v := f["ips"]; v != nil {
		ps.IPs = []netip.Addr{}
		for _, x := range p.list(v, "ips") {
			ps.IPs = append(ps.IPs, p.addr(x, "ip"))
		}
	}
	p.optInt(f, "storm", &ps.Storm, 0, 1<<30)
	p.optInt(f, "mtu", &ps.MTU, 68, 9000)
	optional(f, "lock_mac", &ps.LockMAC, p.boolean)
	p.optInt(f, "rx_pps", &ps.RxPPS, 0, 1<<30)
	return ps
}

func (p *parser) host(n *yaml.Node) HostSpec {
	f := p.fields(n, "host", "name", "mac", "ip", "mtu", "gateway", "forward", "interfaces", "routes", "arp_timeout", "static_arp")
	if f["name"] == nil {
		p.fail(n, "host: name is required")
	}
	h := HostSpec{Line: n.Line, Name: p.name(f["name"], "host name"), ARPTimeout: DefaultARPTimeout}
	if v := f["interfaces"]; v != nil {
		for _, k := range []string{"mac", "ip", "mtu"} {
			if f[k] != nil {
				p.fail(f[k], "host %q: %s belongs in interfaces when interfaces are listed", h.Name, k)
			}
		}
		seen := map[string]bool{}
		for _, x := range p.list(v, "interfaces") {
			fi := p.fields(x, "interface", "name", "mac", "ip", "mtu")
			if fi["name"] == nil {
				p.fail(x, "interface: name is required")
			}
			ifc := p.iface(x, p.name(fi["name"], "interface name"), fi)
			if seen[ifc.Name] {
				p.fail(x, "host %q: interface %q given twice", h.Name, ifc.Name)
			}
			seen[ifc.Name] = true
			h.Interfaces = append(h.Interfaces, ifc)
		}
		if len(h.Interfaces) == 0 {
			p.fail(v, "host %q: interfaces is empty", h.Name)
		}
	} else {
		h.Interfaces = []IfaceSpec{p.iface(n, "eth0", f)}
	}
	optional(f, "gateway", &h.Gateway, p.addr)
	optional(f, "forward", &h.Forward, p.boolean)
	if v := f["routes"]; v != nil {
		for _, x := range p.list(v, "routes") {
			fr := p.fields(x, "route", "to", "via")
			if fr["to"] == nil || fr["via"] == nil {
				p.fail(x, "route: to and via are required")
			}
			h.Routes = append(h.Routes, RouteSpec{Line: x.Line, To: p.prefix(fr["to"], "route to").Masked(), Via: p.addr(fr["via"], "via")})
		}
	}
	if v := f["arp_timeout"]; v != nil {
		h.ARPTimeout = p.duration(v, "arp_timeout")
		if h.ARPTimeout == 0 {
			p.fail(v, "arp_timeout: want more than 0")
		}
	}
	if v := f["static_arp"]; v != nil {
		for _, x := range p.list(v, "static_arp") {
			fs := p.fields(x, "static_arp entry", "ip", "mac")
			if fs["ip"] == nil || fs["mac"] == nil {
				p.fail(x, "static_arp: ip and mac are required")
			}
			h.StaticARP = append(h.StaticARP, StaticARP{Line: x.Line, IP: p.addr(fs["ip"], "ip"), MAC: p.str(fs["mac"], "mac")})
		}
	}
	return h
}

func (p *parser) iface(n *yaml.Node, name string, f map[string]*yaml.Node) IfaceSpec {
	ifc := IfaceSpec{Line: n.Line, Name: name}
	optional(f, "mac", &ifc.MAC, p.mac)
	if v := f["ip"]; v != nil {
		ifc.IP = p.prefix(v, "ip")
		if b := ifc.IP.Bits(); b < 1 || b > 32 {
			p.fail(v, "ip %v: prefix length must be 1-32", ifc.IP)
		}
	}
	p.optInt(f, "mtu", &ifc.MTU, 68, 9000)
	return ifc
}

func (p *parser) link(n *yaml.Node) LinkSpec {
	f := p.fields(n, "link", "name", "a", "b", "latency", "bandwidth", "loss", "queue", "down")
	if f["a"] == nil || f["b"] == nil {
		p.fail(n, "link: a and b are required")
	}
	l := LinkSpec{
		Line: n.Line, A: p.str(f["a"], "link end a"), B: p.str(f["b"], "link end b"),
		Latency: DefaultLatency, Bandwidth: DefaultBandwidth, Queue: DefaultQueue,
	}
	l.Name = l.A + "--" + l.B
	if v := f["name"]; v != nil {
		l.Name = p.name(v, "link name")
	}
	optional(f, "latency", &l.Latency, p.duration)
	optional(f, "bandwidth", &l.Bandwidth, p.bandwidth)
	optional(f, "loss", &l.Loss, p.probability)
	p.optInt(f, "queue", &l.Queue, 0, 1<<24)
	optional(f, "down", &l.Down, p.boolean)
	return l
}

// later is whichever node comes later in the file: the one to blame.
func later(a, b *yaml.Node) *yaml.Node {
	if b.Line > a.Line {
		return b
	}
	return a
}

func (p *parser) need(n *yaml.Node, f map[string]*yaml.Node, what string, keys ...string) {
	for _, k := range keys {
		if f[k] == nil {
			p.fail(n, "%s: %s is required", what, k)
		}
	}
}

var assertKinds = []string{"delivered", "lost", "duplicates", "ttl", "frames", "fdb", "flood_ratio", "arp_cache", "switch_stat", "echo_from", "stopped"}

// cmpKeys are the comparison keys an assertion takes, in the order they are
// checked and listed in messages, with the operator each means. It is the
// one list: the keys assertBody allows come from it too.
var cmpKeys = []struct{ key, op string }{
	{"equals", "=="}, {"at_least", ">="}, {"at_most", "<="}, {"below", "<"}, {"above", ">"},
}

// withCmpKeys is the keys of a comparing assertion: its own, then cmpKeys.
func withCmpKeys(own ...string) []string {
	for _, c := range cmpKeys {
		own = append(own, c.key)
	}
	return own
}

func (p *parser) cmp(n *yaml.Node, f map[string]*yaml.Node, what string) Cmp {
	var c Cmp
	for _, kc := range cmpKeys {
		k := kc.key
		v := f[k]
		if v == nil {
			continue
		}
		if c.Op != "" {
			p.fail(v, "%s: one comparison per assertion", what)
		}
		c = Cmp{Op: kc.op, Value: p.number(v, k, -1e18, 1e18)}
	}
	if c.Op == "" {
		p.fail(n, "%s: want one of %s", what, strings.Join(withCmpKeys(), ", "))
	}
	return c
}

func (p *parser) assertion(n *yaml.Node) Assertion {
	f := p.fields(n, "assertion", append([]string{"at", "since"}, assertKinds...)...)
	a := Assertion{Line: n.Line}
	if v := f["at"]; v != nil {
		a.At, a.HasAt = p.duration(v, "at"), true
	}
	if v := f["since"]; v != nil {
		a.Since, a.HasSince = p.duration(v, "since"), true
	}
	for _, k := range assertKinds {
		v := f[k]
		if v == nil {
			continue
		}
		if a.Kind != "" {
			p.fail(later(v, f[a.Kind]), "assertion: one check per entry (%s and %s)", a.Kind, k)
		}
		a.Kind = k
		p.assertBody(&a, k, v)
	}
	if a.Kind == "" {
		p.fail(n, "assertion: want one of %s", strings.Join(assertKinds, ", "))
	}
	if a.HasAt && a.HasSince && a.Since > a.At {
		p.fail(n, "assertion: since %v is after at %v", a.Since, a.At)
	}
	return a
}

func (p *parser) assertBody(a *Assertion, k string, v *yaml.Node) {
	switch k {
	case "delivered", "lost", "duplicates":
		f := p.fields(v, k, withCmpKeys("ping", "flow")...)
		switch {
		case f["ping"] != nil && f["flow"] != nil:
			p.fail(v, "%s: give ping or flow, not both", k)
		case f["ping"] != nil:
			a.Ping = p.str(f["ping"], "ping")
		case f["flow"] != nil:
			a.Flow = p.str(f["flow"], "flow")
		default:
			p.fail(v, "%s: ping or flow is required", k)
		}
		a.Cmp = p.cmp(v, f, k)
	case "ttl":
		f := p.fields(v, k, withCmpKeys("ping")...)
		p.need(v, f, k, "ping")
		a.Ping = p.str(f["ping"], "ping")
		a.Cmp = p.cmp(v, f, k)
	case "frames":
		f := p.fields(v, k, withCmpKeys("port", "dir", "type")...)
		p.need(v, f, k, "port", "dir")
		a.Port = p.str(f["port"], "port")
		a.Dir = p.scalar(f["dir"], "dir")
		if a.Dir != "rx" && a.Dir != "tx" {
			p.fail(f["dir"], "dir %q: want rx or tx", a.Dir)
		}
		a.Type = "all"
		if x := f["type"]; x != nil {
			a.Type = p.scalar(x, "type")
			if frameTypeIndex(a.Type) < 0 {
				p.fail(x, "frame type %q: want all, broadcast, unicast, arp, arp-request, arp-reply, icmp or udp", a.Type)
			}
		}
		a.Cmp = p.cmp(v, f, k)
	case "fdb":
		f := p.fields(v, k, "switch", "mac", "vlan", "port", "absent")
		p.need(v, f, k, "switch", "mac")
		a.Switch, a.MAC = p.str(f["switch"], "switch"), p.str(f["mac"], "mac")
		optional(f, "vlan", &a.VLAN, p.vlan)
		optional(f, "absent", &a.Absent, p.boolean)
		optional(f, "port", &a.Port, p.str)
		if (a.Port == "") == !a.Absent {
			p.fail(v, "fdb: give port, or absent: true")
		}
	case "flood_ratio":
		f := p.fields(v, k, withCmpKeys("switch", "port")...)
		p.need(v, f, k, "switch")
		a.Switch = p.str(f["switch"], "switch")
		optional(f, "port", &a.Port, p.str)
		a.Cmp = p.cmp(v, f, k)
	case "arp_cache":
		f := p.fields(v, k, "host", "ip", "mac", "absent")
		p.need(v, f, k, "host", "ip")
		a.Host, a.IP = p.str(f["host"], "host"), p.addr(f["ip"], "ip")
		optional(f, "mac", &a.MAC, p.str)
		optional(f, "absent", &a.Absent, p.boolean)
		if (a.MAC == "") == !a.Absent {
			p.fail(v, "arp_cache: give mac, or absent: true")
		}
	case "switch_stat":
		f := p.fields(v, k, withCmpKeys("switch", "stat")...)
		p.need(v, f, k, "switch", "stat")
		a.Switch, a.Stat = p.str(f["switch"], "switch"), p.str(f["stat"], "stat")
		if !knownStat(a.Stat) {
			p.fail(f["stat"], "stat %q: want one of %s", a.Stat, strings.Join(statNames(), ", "))
		}
		a.Cmp = p.cmp(v, f, k)
	case "echo_from":
		f := p.fields(v, k, "host", "ip")
		p.need(v, f, k, "host", "ip")
		a.Host, a.IP = p.str(f["host"], "host"), p.addr(f["ip"], "ip")
	case "stopped":
		a.Reason = p.scalar(v, "stopped")
		switch a.Reason {
		case StopIdle, StopDuration, StopMaxEvents, StopMaxFrames:
		default:
			p.fail(v, "stopped %q: want idle, duration, max_events or max_frames", a.Reason)
		}
	}
}
