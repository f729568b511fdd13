package sim

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/tapswitch/tapswitch/arp"
	"github.com/tapswitch/tapswitch/fdb"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

// build turns the scenario into switches, hosts, links and scheduled
// events. Every error names the scenario line it comes from.
func (s *Sim) build() error {
	sc := s.sc
	for _, a := range sc.Assertions {
		if a.Kind == "frames" && a.Type != "" && a.Type != "all" {
			s.typedPorts[a.Port] = true
		}
	}
	maxMTU := 1500
	nifs := 0
	for i := range sc.Hosts {
		nifs += len(sc.Hosts[i].Interfaces)
	}
	s.eps = make([]endpoint, 0, nifs+2*len(sc.Links))
	for i := range sc.Switches {
		if err := s.addSwitch(&sc.Switches[i]); err != nil {
			return err
		}
		maxMTU = max(maxMTU, sc.Switches[i].MTU)
	}
	macs := map[fdb.MAC]string{}
	ips := map[ip4]string{}
	for i := range sc.Hosts {
		if err := s.addHost(&sc.Hosts[i], macs, ips); err != nil {
			return err
		}
		for _, f := range sc.Hosts[i].Interfaces {
			maxMTU = max(maxMTU, f.MTU)
		}
	}
	s.pool.size = ethLen + 4 + maxMTU
	for i := range sc.Hosts {
		if err := s.hostStatics(&sc.Hosts[i]); err != nil {
			return err
		}
	}
	for i := range sc.Links {
		if err := s.buildLink(&sc.Links[i]); err != nil {
			return err
		}
	}
	if err := s.buildTimeline(); err != nil {
		return err
	}
	for i := range sc.Hosts {
		h := s.hosts[i]
		for j := range h.ifs {
			if s.eps[h.ifs[j].ep].link < 0 && !h.ifs[j].moved {
				return sc.errorf(sc.Hosts[i].Line, "host %q: interface %s is not linked to anything", h.name, h.ifs[j].name)
			}
		}
	}
	for _, n := range s.switches {
		for _, ps := range n.spec.Ports {
			if _, ok := n.byName[ps.Name]; !ok && !s.movedTargets[n.name+":"+ps.Name] {
				return sc.errorf(ps.Line, "switch %q: port %q is set up but no link or move uses it", n.name, ps.Name)
			}
		}
	}
	for i := range sc.Assertions {
		if err := s.buildCheck(&sc.Assertions[i]); err != nil {
			return err
		}
	}
	s.schedule(s.tick, evTick, 0, 0, 0)
	return nil
}

func (s *Sim) taken(name string) bool {
	_, h := s.hostByName[name]
	_, w := s.swByName[name]
	return h || w
}

func (s *Sim) addSwitch(spec *SwitchSpec) error {
	sc := s.sc
	if spec.Name == "" || strings.ContainsAny(spec.Name, ": \t*") {
		return sc.errorf(spec.Line, "switch name %q: want a name without spaces, colons or '*'", spec.Name)
	}
	if s.taken(spec.Name) {
		return sc.errorf(spec.Line, "switch %q: the name is taken", spec.Name)
	}
	n := &swNode{s: s, idx: int32(len(s.switches)), name: spec.Name, spec: spec, ports: map[string]*PortSpec{}, byName: map[string]int32{}}
	for i := range spec.Ports {
		n.ports[spec.Ports[i].Name] = &spec.Ports[i]
	}
	mtu := spec.MTU
	if mtu == 0 {
		mtu = vswitch.DefaultMTU
	}
	sw, err := vswitch.New(vswitch.Config{
		Name: spec.Name, MTU: mtu,
		FDB:   fdb.Config{Ageing: spec.Ageing, Limit: spec.TableLimit, PortLimit: spec.PortLimit, Policy: spec.Policy},
		ARP:   arp.Config{Ageing: spec.ARPAgeing, Suppress: spec.Suppress, Guard: spec.Guard},
		Clock: clock{s}, Tracer: n,
	})
	if err != nil {
		return sc.errorf(spec.Line, "%v", err)
	}
	n.sw = sw
	s.swByName[spec.Name] = n.idx
	s.switches = append(s.switches, n)
	return nil
}

// kubenetMAC is the MAC kubenet gives a pod: 0a:58 and its IPv4 address.
func kubenetMAC(ip ip4) fdb.MAC {
	return fdb.MAC{0x0a, 0x58, byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)}
}

func (s *Sim) addHost(spec *HostSpec, macs map[fdb.MAC]string, ips map[ip4]string) error {
	sc := s.sc
	if spec.Name == "" || strings.ContainsAny(spec.Name, ": \t*") {
		return sc.errorf(spec.Line, "host name %q: want a name without spaces, colons or '*'", spec.Name)
	}
	if s.taken(spec.Name) {
		return sc.errorf(spec.Line, "host %q: the name is taken", spec.Name)
	}
	if len(spec.Interfaces) == 0 {
		return sc.errorf(spec.Line, "host %q: no interface", spec.Name)
	}
	h := &host{idx: int32(len(s.hosts)), name: spec.Name, forward: spec.Forward, arpTimeout: int64(spec.ARPTimeout)}
	if h.arpTimeout <= 0 {
		h.arpTimeout = int64(DefaultARPTimeout)
	}
	h.ifs = make([]hostIf, len(spec.Interfaces))
	for i, is := range spec.Interfaces {
		line := is.Line
		if line == 0 {
			line = spec.Line
		}
		f := hostIf{name: is.Name, mac: is.MAC, bits: -1, mtu: is.MTU}
		if f.name == "" {
			f.name = fmt.Sprintf("eth%d", i)
		}
		for j := range i {
			if h.ifs[j].name == f.name {
				return sc.errorf(line, "host %q: interface %q given twice", spec.Name, f.name)
			}
		}
		if f.mtu == 0 {
			f.mtu = 1500
		}
		if f.mtu < 68 || f.mtu > 9000 {
			return sc.errorf(line, "host %q: mtu %d: want 68-9000", spec.Name, f.mtu)
		}
		if is.IP.IsValid() {
			if !is.IP.Addr().Is4() || is.IP.Bits() < 1 {
				return sc.errorf(line, "host %q: ip %v: want an IPv4 address with a prefix length of 1-32", spec.Name, is.IP)
			}
			f.ip, f.bits, f.mask = ipOf(is.IP.Addr()), int8(is.IP.Bits()), maskOf(is.IP.Bits())
			if other, dup := ips[f.ip]; dup {
				return sc.errorf(line, "host %q: ip %v is also %s's", spec.Name, is.IP.Addr(), other)
			}
			ips[f.ip] = h.ifName(int32(i))
		}
		if f.mac.IsZero() {
			if f.bits >= 0 {
				f.mac = kubenetMAC(f.ip)
			} else {
				f.mac = fdb.MAC{0x02, 0x00, byte(h.idx >> 16), byte(h.idx >> 8), byte(h.idx), byte(i)}
			}
		}
		if f.mac.IsMulticast() {
			return sc.errorf(line, "host %q: mac %s is not unicast", spec.Name, f.mac)
		}
		if other, dup := macs[f.mac]; dup {
			return sc.errorf(line, "host %q: mac %s is also %s's", spec.Name, f.mac, other)
		}
		macs[f.mac] = spec.Name
		f.ep = s.newEndpoint()
		ep := &s.eps[f.ep]
		ep.host, ep.ifc = h.idx, int32(i)
		h.ifs[i] = f
		s.named(f.ep, h.ifName(int32(i)))
	}
	if spec.Gateway.IsValid() {
		h.gw, h.hasGW = ipOf(spec.Gateway), true
		if _, ok := h.onLink(h.gw); !ok || !spec.Gateway.Is4() {
			return sc.errorf(spec.Line, "host %q: gateway %v is on none of its subnets", spec.Name, spec.Gateway)
		}
	}
	for _, r := range spec.Routes {
		line := max(r.Line, spec.Line)
		if !r.To.IsValid() || !r.To.Addr().Is4() || !r.Via.Is4() {
			return sc.errorf(line, "host %q: route %v via %v: IPv4 only", spec.Name, r.To, r.Via)
		}
		via := ipOf(r.Via)
		if _, ok := h.onLink(via); !ok {
			return sc.errorf(line, "host %q: route to %v: via %v is on none of its subnets", spec.Name, r.To, r.Via)
		}
		m := maskOf(r.To.Bits())
		h.routes = append(h.routes, route{dst: ipOf(r.To.Addr()) & m, mask: m, bits: r.To.Bits(), via: via})
	}
	s.hostByName[spec.Name] = h.idx
	s.hosts = append(s.hosts, h)
	return nil
}

func (s *Sim) hostStatics(spec *HostSpec) error {
	h := s.hosts[s.hostByName[spec.Name]]
	for _, st := range spec.StaticARP {
		line := max(st.Line, spec.Line)
		mac, err := s.macRef(st.MAC, line)
		if err != nil {
			return err
		}
		ip := ipOf(st.IP)
		ifc, ok := h.onLink(ip)
		if !ok {
			return s.sc.errorf(line, "host %q: static ARP entry %v is on none of its subnets", spec.Name, st.IP)
		}
		h.cache = append(h.cache, arpEntry{ip: ip, ifc: ifc, mac: mac, static: true})
	}
	return nil
}

func (s *Sim) newEndpoint() int32 {
	s.eps = append(s.eps, endpoint{link: -1, host: -1, sw: -1, capture: -1, islot: -1})
	return int32(len(s.eps) - 1)
}

// named gives endpoint e its name, and counters by frame type when an
// assertion counts its frames by type.
func (s *Sim) named(e int32, name string) {
	ep := &s.eps[e]
	ep.portName = name
	if s.typedPorts[name] {
		ep.typed = new([2][numFrameTypes]uint64)
	}
	if s.opts.Pcap != nil && s.opts.PcapPerPort {
		c := s.openCapture(name)
		s.eps[e].capture = c
	}
}

func splitRef(ref string) (string, string) {
	name, rest, _ := strings.Cut(ref, ":")
	return name, rest
}

// hostRef resolves "host" (its only interface) or "host:iface".
func (s *Sim) hostRef(ref string, line int) (int32, int32, error) {
	name, ifname := splitRef(ref)
	hi, ok := s.hostByName[name]
	if !ok {
		return 0, 0, s.sc.errorf(line, "no host named %q", name)
	}
	h := s.hosts[hi]
	if ifname == "" {
		if len(h.ifs) > 1 {
			return 0, 0, s.sc.errorf(line, "host %q has %d interfaces: name one, such as %s:%s", name, len(h.ifs), name, h.ifs[0].name)
		}
		return hi, 0, nil
	}
	for i := range h.ifs {
		if h.ifs[i].name == ifname {
			return hi, int32(i), nil
		}
	}
	return 0, 0, s.sc.errorf(line, "host %q has no interface %q", name, ifname)
}

// macRef resolves a MAC address or a host[:iface] to a MAC.
func (s *Sim) macRef(ref string, line int) (fdb.MAC, error) {
	if m, err := fdb.ParseMAC(ref); err == nil {
		return m, nil
	}
	if _, ok := s.hostByName[strings.SplitN(ref, ":", 2)[0]]; !ok {
		return fdb.MAC{}, s.sc.errorf(line, "%q is neither a MAC address nor a host", ref)
	}
	hi, ifc, err := s.hostRef(ref, line)
	if err != nil {
		return fdb.MAC{}, err
	}
	return s.macOf(hi, ifc), nil
}

// ipRef resolves an IPv4 address or a host[:iface] to an address; a bare
// host gives its first address.
func (s *Sim) ipRef(ref string, line int) (ip4, error) {
	if a, err := netip.ParseAddr(ref); err == nil {
		if !a.Is4() {
			return 0, s.sc.errorf(line, "%v: IPv4 only", a)
		}
		return ipOf(a), nil
	}
	name, ifname := splitRef(ref)
	hi, ok := s.hostByName[name]
	if !ok {
		return 0, s.sc.errorf(line, "%q is neither an IPv4 address nor a host", ref)
	}
	if ifname == "" {
		ip, ok := s.hosts[hi].firstIP()
		if !ok {
			return 0, s.sc.errorf(line, "host %q has no IP address", name)
		}
		return ip, nil
	}
	_, ifc, err := s.hostRef(ref, line)
	if err != nil {
		return 0, err
	}
	f := &s.hosts[hi].ifs[ifc]
	if f.bits < 0 {
		return 0, s.sc.errorf(line, "%s has no IP address", ref)
	}
	return f.ip, nil
}

func (s *Sim) buildLink(spec *LinkSpec) error {
	sc := s.sc
	if spec.Name == "" {
		spec.Name = spec.A + "--" + spec.B
	}
	if _, dup := s.linkByName[spec.Name]; dup {
		return sc.errorf(spec.Line, "link %q: name given twice", spec.Name)
	}
	switch {
	case spec.Latency < 0 || spec.Latency > maxDuration:
		return sc.errorf(spec.Line, "link %q: latency %v out of range", spec.Name, spec.Latency)
	case spec.Bandwidth < 0:
		return sc.errorf(spec.Line, "link %q: bandwidth %d: must not be negative", spec.Name, spec.Bandwidth)
	case !(spec.Loss >= 0 && spec.Loss <= 1):
		return sc.errorf(spec.Line, "link %q: loss %v: want 0-1", spec.Name, spec.Loss)
	case spec.Queue < 0:
		return sc.errorf(spec.Line, "link %q: queue %d: must not be negative", spec.Name, spec.Queue)
	case spec.A == spec.B:
		return sc.errorf(spec.Line, "link %q: both ends are %s", spec.Name, spec.A)
	}
	a, err := s.linkEnd(spec.A, spec.B, spec.Line)
	if err != nil {
		return err
	}
	b, err := s.linkEnd(spec.B, spec.A, spec.Line)
	if err != nil {
		return err
	}
	ea, eb, err := s.realise(a, b, spec.Line)
	if err != nil {
		return err
	}
	l := s.addLink(*spec)
	s.plug(ea, l, 0)
	s.plug(eb, l, 1)
	l.up = !spec.Down
	return nil
}

// end is a resolved link end: a host interface or a switch port to create.
type end struct {
	host, ifc int32
	sw        int32
	port      string
}

func (s *Sim) linkEnd(ref, other string, line int) (end, error) {
	name, rest := splitRef(ref)
	if si, ok := s.swByName[name]; ok {
		if rest == "" {
			// A bare switch: name the port after the other end.
			on, orest := splitRef(other)
			rest = on
			if _, isHost := s.hostByName[on]; isHost && orest != "" {
				rest = on + "-" + orest
			}
			n := s.switches[si]
			base := rest
			for i := 2; ; i++ {
				if _, used := n.byName[rest]; !used {
					break
				}
				rest = fmt.Sprintf("%s-%d", base, i)
			}
		}
		return end{host: -1, sw: si, port: rest}, nil
	}
	if _, ok := s.hostByName[name]; !ok {
		return end{}, s.sc.errorf(line, "link end %q: no host or switch named %q", ref, name)
	}
	hi, ifc, err := s.hostRef(ref, line)
	if err != nil {
		return end{}, err
	}
	if s.eps[s.hosts[hi].ifs[ifc].ep].link >= 0 {
		return end{}, s.sc.errorf(line, "link end %q: %s is already linked", ref, s.hosts[hi].ifName(ifc))
	}
	return end{host: hi, ifc: ifc, sw: -1}, nil
}

// realise makes the endpoints of a link, creating switch ports.
func (s *Sim) realise(a, b end, line int) (int32, int32, error) {
	if a.sw >= 0 && b.sw >= 0 && a.sw == b.sw {
		// Allowed (a cable looping back into the same switch), but each
		// end needs its own port.
		if a.port == b.port {
			return 0, 0, s.sc.errorf(line, "link: both ends are port %s:%s", s.switches[a.sw].name, a.port)
		}
	}
	mk := func(x, peer end) (int32, error) {
		if x.sw < 0 {
			return s.hosts[x.host].ifs[x.ifc].ep, nil
		}
		e, err := s.addSwitchPort(s.switches[x.sw], x.port, peer.host, peer.ifc)
		if err != nil {
			return 0, s.sc.errorf(line, "%v", err)
		}
		return e, nil
	}
	ea, err := mk(a, b)
	if err != nil {
		return 0, 0, err
	}
	eb, err := mk(b, a)
	return ea, eb, err
}

// addSwitchPort adds port name to n, bound (for the ARP guard) to the IP of
// the host interface it will face, unless its PortSpec says otherwise.
func (s *Sim) addSwitchPort(n *swNode, name string, peerHost, peerIfc int32) (int32, error) {
	if _, dup := n.byName[name]; dup {
		return 0, fmt.Errorf("port %s:%s is already linked", n.name, name)
	}
	cfg := vswitch.PortConfig{Name: name}
	ps := n.ports[name]
	if ps != nil {
		cfg.PVID, cfg.Trunk, cfg.Allowed, cfg.Hairpin = ps.VLAN, ps.Trunk, ps.Allowed, ps.Hairpin
		cfg.FDBLimit, cfg.IPs, cfg.Storm, cfg.MTU = ps.FDBLimit, ps.IPs, ps.Storm, ps.MTU
		if ps.LockMAC {
			if peerHost < 0 {
				return 0, fmt.Errorf("port %s:%s: lock_mac needs a host at the other end", n.name, name)
			}
			cfg.LockMAC = s.hosts[peerHost].ifs[peerIfc].mac
		}
	}
	if !n.spec.Guard {
		cfg.IPs = nil // bindings only matter to the guard; they cost a map per port
	} else if (ps == nil || ps.IPs == nil) && peerHost >= 0 {
		if f := &s.hosts[peerHost].ifs[peerIfc]; f.bits >= 0 {
			cfg.IPs = []netip.Addr{f.ip.addr()}
		}
	}
	e := s.newEndpoint()
	id, err := n.sw.AddPort(&swPort{s: s, ep: e}, cfg)
	if err != nil {
		s.eps = s.eps[:e]
		return 0, err
	}
	ep := &s.eps[e]
	ep.sw, ep.port = n.idx, id
	if ps != nil && ps.RxPPS > 0 {
		ep.rxGap = max(int64(time.Second)/int64(ps.RxPPS), 1)
	}
	s.named(e, n.name+":"+name)
	for int(id) >= len(n.portEP) {
		n.portEP = append(n.portEP, -1)
	}
	n.portEP[id] = e
	n.byName[name] = e
	return e, nil
}

func (s *Sim) addLink(spec LinkSpec) *link {
	l := &link{
		idx: int32(len(s.links)), name: spec.Name, ends: [2]int32{-1, -1}, up: true, capture: -1,
		latency: int64(spec.Latency), bps: spec.Bandwidth, loss: spec.Loss, queue: spec.Queue,
	}
	s.links = append(s.links, l)
	s.linkByName[spec.Name] = l.idx
	if s.opts.Pcap != nil && !s.opts.PcapPerPort {
		l.capture = s.openCapture(spec.Name)
	}
	return l
}

// knownPort says whether switch:port names a port that a link creates or a
// move will.
func (s *Sim) knownPort(ref string) bool {
	name, port := splitRef(ref)
	si, ok := s.swByName[name]
	if !ok || port == "" {
		return false
	}
	_, linked := s.switches[si].byName[port]
	return linked || s.movedTargets[ref]
}
