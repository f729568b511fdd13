// Package simreal runs a simulator scenario (package sim) on the real
// dataplane: the daemon in this process, a network namespace and TAP per
// host, and the scenario's timeline as real traffic from inside those
// namespaces. Its result has the simulator's shape (sim.Result), so the two
// runs compare by name (Compare). What the real node cannot do (several
// switches, cables with latency or loss, routers) is refused by Check with
// the scenario line that asks for it, never approximated.
package simreal

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/tapswitch/tapswitch/cmd/internal/daemon"
	"github.com/tapswitch/tapswitch/sim"
)

// MaxWall is the longest timeline a real run accepts: it runs in wall-clock
// time, in tests as well as by hand.
const MaxWall = 60 * time.Second

// settle is how long a real run goes on after the timeline's last action
// or assertion, for the last replies to arrive (a ping waits as long for
// its last reply).
const settle = time.Second

// refuse says why a scenario cannot run on the real node: the scenario
// key that asks for what it cannot do, and its line. It is a *sim.Error,
// so the CLI exits with sim.ExitBadScenario.
func refuse(sc *sim.Scenario, line int, format string, a ...any) error {
	return &sim.Error{File: sc.File, Line: line, Msg: "not realisable on the real node: " + fmt.Sprintf(format, a...)}
}

// plan is a checked scenario: when every step starts, when the run ends,
// and where the daemon's own gateway port goes.
type plan struct {
	sc     *sim.Scenario
	sw     *sim.SwitchSpec
	subnet netip.Prefix
	gw     netip.Addr // the daemon's gateway address: one no host has
	starts []time.Duration
	end    time.Duration
	// portOf maps a host to the name of its switch port in the scenario
	// (links to a bare switch name the port after the host).
	portOf map[string]string
	hostOf map[string]string // port name -> host
	ports  map[string]*sim.PortSpec
	hosts  map[string]*sim.HostSpec
}

// Check says whether sc can run on the real node, and if not why, naming
// the key and its line (a *sim.Error).
func Check(sc *sim.Scenario) error {
	_, err := newPlan(sc)
	return err
}

func newPlan(sc *sim.Scenario) (*plan, error) {
	p := &plan{sc: sc, portOf: map[string]string{}, hostOf: map[string]string{}, ports: map[string]*sim.PortSpec{}, hosts: map[string]*sim.HostSpec{}}
	if len(sc.Switches) != 1 {
		line := 0
		if len(sc.Switches) > 1 {
			line = sc.Switches[1].Line
		}
		return nil, refuse(sc, line, "switches: %d switches; the daemon is one switch with no uplink port, so switches joined by links cannot be built", len(sc.Switches))
	}
	sw := &sc.Switches[0]
	p.sw = sw
	if sw.MTU != 0 && sw.MTU != 1500 {
		return nil, refuse(sc, sw.Line, "switches.%s.mtu %d: the real node's TAPs keep 1500", sw.Name, sw.MTU)
	}
	for i := range sw.Ports {
		ps := &sw.Ports[i]
		p.ports[ps.Name] = ps
		key := fmt.Sprintf("switches.%s.ports.%s", sw.Name, ps.Name)
		switch {
		case ps.Trunk || len(ps.Allowed) > 0:
			return nil, refuse(sc, ps.Line, "%s.trunk: the daemon has no trunk port", key)
		case ps.Hairpin:
			return nil, refuse(sc, ps.Line, "%s.hairpin: the daemon's pod ports have no hairpin setting", key)
		case ps.FDBLimit != 0:
			return nil, refuse(sc, ps.Line, "%s.fdb_limit: the daemon has one port limit for every port (fdb.port_limit)", key)
		case ps.IPs != nil:
			return nil, refuse(sc, ps.Line, "%s.ips: the daemon binds a pod port to the pod's own addresses", key)
		case ps.MTU != 0 && ps.MTU != 1500:
			return nil, refuse(sc, ps.Line, "%s.mtu: the real node's TAPs keep 1500", key)
		}
	}
	for i := range sc.Hosts {
		h := &sc.Hosts[i]
		p.hosts[h.Name] = h
		key := "hosts." + h.Name
		switch {
		case len(h.Interfaces) != 1:
			return nil, refuse(sc, h.Line, "%s.interfaces: %d interfaces; a pod has one (routers are not built)", key, len(h.Interfaces))
		case len(h.Routes) > 0:
			return nil, refuse(sc, h.Routes[0].Line, "%s.routes: routers and routes beyond the pod subnet are not built", key)
		}
		if err := daemon.ValidName(h.Name); err != nil {
			return nil, refuse(sc, h.Line, "%s: the host's name is a pod's: %v", key, err)
		}
		ifc := h.Interfaces[0]
		if !ifc.IP.IsValid() || !ifc.IP.Addr().Is4() {
			return nil, refuse(sc, ifc.Line, "%s.ip: a pod needs an IPv4 address", key)
		}
		if ifc.MTU != 0 && ifc.MTU != 1500 {
			return nil, refuse(sc, ifc.Line, "%s.mtu %d: the real node's TAPs keep 1500", key, ifc.MTU)
		}
		sub := ifc.IP.Masked()
		if !p.subnet.IsValid() {
			p.subnet = sub
		} else if sub != p.subnet {
			return nil, refuse(sc, ifc.Line, "%s.ip %v: the daemon has one pod subnet, and %v is not %v", key, ifc.IP, sub, p.subnet)
		}
		if h.Gateway.IsValid() && !sub.Contains(h.Gateway) {
			return nil, refuse(sc, h.Line, "%s.gateway: outside the pod subnet", key)
		}
	}
	if len(sc.Hosts) == 0 {
		return nil, refuse(sc, 0, "hosts: none")
	}
	if err := p.links(); err != nil {
		return nil, err
	}
	if err := p.pickGateway(); err != nil {
		return nil, err
	}
	if err := p.timeline(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *plan) links() error {
	sc, sw := p.sc, p.sw
	for i := range sc.Links {
		l := &sc.Links[i]
		key := "links." + l.Name
		switch {
		case l.Latency != sim.DefaultLatency:
			return refuse(sc, l.Line, "%s.latency %v: a TAP has no configurable latency (only the default %v stands for it)", key, l.Latency, sim.DefaultLatency)
		case l.Bandwidth != sim.DefaultBandwidth:
			return refuse(sc, l.Line, "%s.bandwidth: a TAP has no configurable bandwidth", key)
		case l.Loss != 0:
			return refuse(sc, l.Line, "%s.loss: a TAP loses nothing on purpose", key)
		case l.Queue != sim.DefaultQueue:
			return refuse(sc, l.Line, "%s.queue %d: the TAP's queue is the daemon's tx_queue_len for every pod", key, l.Queue)
		case l.Down:
			return refuse(sc, l.Line, "%s.down: a cable that starts down waits for link_up, and the daemon does not watch a TAP's carrier", key)
		}
		host, port := "", ""
		for _, end := range [2][2]string{{l.A, l.B}, {l.B, l.A}} {
			if _, ok := p.hosts[end[0]]; ok {
				host = end[0]
				switch {
				case end[1] == sw.Name:
					port = host
				case len(end[1]) > len(sw.Name) && end[1][:len(sw.Name)+1] == sw.Name+":":
					port = end[1][len(sw.Name)+1:]
				}
			}
		}
		if host == "" || port == "" {
			return refuse(sc, l.Line, "%s: a cable between %s and %s; only host to switch cables are built", key, l.A, l.B)
		}
		p.portOf[host], p.hostOf[port] = port, host
	}
	type setting struct {
		v    int
		port string
		spec *sim.PortSpec
	}
	first := map[string]*setting{}
	for _, h := range sc.Hosts {
		port, ok := p.portOf[h.Name]
		if !ok {
			return refuse(sc, h.Line, "hosts.%s: not linked to the switch", h.Name)
		}
		var ps sim.PortSpec
		spec := p.ports[port]
		if spec != nil {
			ps = *spec
		}
		// The daemon's settings are node-wide: every pod port gets the
		// same, so the scenario's must be the same on every port.
		for _, x := range []struct {
			key string
			v   int
		}{{"lock_mac", b2i(ps.LockMAC)}, {"rx_pps", ps.RxPPS}, {"storm", ps.Storm}} {
			f := first[x.key]
			if f == nil {
				first[x.key] = &setting{x.v, port, spec}
				continue
			}
			if f.v == x.v {
				continue
			}
			// Blame the port whose settings ask for it.
			blame, bspec := port, spec
			if spec == nil || x.v == 0 {
				blame, bspec = f.port, f.spec
			}
			line := p.sw.Line
			if bspec != nil {
				line = bspec.Line
			}
			return refuse(sc, line, "switches.%s.ports.%s.%s: the daemon's %s is node-wide, and the scenario sets it on some ports only", p.sw.Name, blame, x.key, daemonKey(x.key))
		}
	}
	return nil
}

func daemonKey(k string) string {
	switch k {
	case "lock_mac":
		return "switch.lock_pod_mac"
	case "storm":
		return "switch.storm_pps"
	}
	return k
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// pickGateway finds an address for the daemon's gateway port that no host
// has: the scenario's hosts are all pods (its "gateway" host included),
// and the daemon's own gateway is a port the scenario does not have.
func (p *plan) pickGateway() error {
	used := map[netip.Addr]bool{}
	for _, h := range p.sc.Hosts {
		used[h.Interfaces[0].IP.Addr()] = true
	}
	// From the top of the subnet down, below its broadcast address; the
	// hosts are fewer than the addresses tried.
	a4 := p.subnet.Addr().As4()
	v := uint32(a4[0])<<24 | uint32(a4[1])<<16 | uint32(a4[2])<<8 | uint32(a4[3])
	v |= uint32(1<<(32-p.subnet.Bits()) - 1)
	a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	for i := 0; i <= len(p.sc.Hosts); i++ {
		a = a.Prev()
		if !p.subnet.Contains(a) || a == p.subnet.Addr() {
			break
		}
		if !used[a] {
			p.gw = a
			return nil
		}
	}
	return refuse(p.sc, 0, "hosts: no address left in %v for the daemon's own gateway port", p.subnet)
}

func (p *plan) timeline() error {
	sc := p.sc
	var t, end time.Duration
	for _, st := range sc.Timeline {
		if st.HasAt {
			t = st.At
		} else {
			t += st.Wait
		}
		p.starts = append(p.starts, t)
		busy := time.Duration(0)
		if a := st.Action; a != nil {
			k, ok := realActions[a.Kind()]
			if !ok {
				return refuse(sc, st.Line, "timeline %s: not realised yet", a.Kind())
			}
			var err error
			if busy, err = k.plan(p, a, st.Line); err != nil {
				return err
			}
		}
		end = max(end, t+busy)
	}
	for _, a := range sc.Assertions {
		if a.HasAt {
			end = max(end, a.At)
		}
		if a.Kind == "stopped" && a.Reason != "idle" && a.Reason != "duration" {
			return refuse(sc, a.Line, "assert stopped: %s: the real node has no event or frame limit", a.Reason)
		}
	}
	end += settle
	// A flow without a count runs until its stop_flow or the end.
	for i, st := range sc.Timeline {
		if f, ok := st.Action.(*sim.Flow); ok && f.Count == 0 && sc.Run.Duration == 0 && !stopped(sc, i, f.Name) {
			return refuse(sc, st.Line, "timeline flow %s: no count, no stop_flow after it and no run.duration: it would never end", f.Name)
		}
	}
	if sc.Run.Duration > 0 {
		end = sc.Run.Duration
	}
	if end > MaxWall {
		return refuse(sc, 0, "timeline: runs %v of wall-clock time on the real node, more than %v (--time-scale shrinks it)", end.Round(time.Millisecond), MaxWall)
	}
	for _, h := range sc.Hosts {
		if h.ARPTimeout < end {
			return refuse(sc, h.Line, "hosts.%s.arp_timeout %v: shorter than the run (%v); a pod's kernel re-resolves a stale entry with unicast probes where the simulated host broadcasts a request", h.Name, h.ARPTimeout, end.Round(time.Millisecond))
		}
	}
	p.end = end
	return nil
}

// stopped says whether a stop_flow after step i stops flow name.
func stopped(sc *sim.Scenario, i int, name string) bool {
	for _, st := range sc.Timeline[i+1:] {
		if s, ok := st.Action.(*sim.StopFlow); ok && s.Flow == name {
			return true
		}
	}
	return false
}

// IsRefusal says whether err is Check's (or Run's) refusal of a scenario.
func IsRefusal(err error) bool {
	var se *sim.Error
	return errors.As(err, &se)
}
