package daemon

import (
	"os"
	"time"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/fdb"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

func (d *Daemon) podInfoLocked(p *pod) api.Pod {
	out := api.Pod{
		Name: p.rec.Name, State: api.PodUp, Netns: p.rec.Netns, IfName: p.rec.IfName,
		IP: p.ip.String(), IPs: p.cidrs(), MAC: p.mac.String(), VLAN: p.rec.VLAN, Queues: p.rec.Queues,
		Static: p.rec.Static, Created: p.rec.Created,
		ContainerID: p.rec.ContainerID, Network: p.rec.Network,
	}
	if p.link != nil {
		out.Port = p.link.id
	} else {
		out.State, out.Reason = api.PodGone, p.reason
	}
	return out
}

// Status describes the daemon.
func (d *Daemon) Status() api.Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := api.Status{
		Switch: d.cfg.Switch.Name, PID: os.Getpid(), Started: d.started,
		Subnet: d.subnet.String(), Queues: d.cfg.Queues, Reattached: d.reattached,
	}
	if d.subnet6.IsValid() {
		s.SubnetV6 = d.subnet6.String()
	}
	if d.store != nil {
		s.StateFile = d.store.Path()
	}
	if d.gw != nil {
		s.Gateway = d.gwAddr.String()
		s.GatewayV6 = d.gw6String()
		s.GatewayIf = d.gw.name
		s.GatewayMA = d.gw.mac.String()
	}
	return s
}

// Pods lists the pods by name.
func (d *Daemon) Pods() []api.Pod {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]api.Pod, 0, len(d.pods))
	for _, n := range d.podNamesLocked() {
		out = append(out, d.podInfoLocked(d.pods[n]))
	}
	return out
}

// Pod describes one pod.
func (d *Daemon) Pod(name string) (api.Pod, error) {
	if err := ValidName(name); err != nil {
		return api.Pod{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.pods[name]
	if !ok {
		return api.Pod{}, notFound("pod %q: no such pod", name)
	}
	return d.podInfoLocked(p), nil
}

// Ports lists the live ports in ID order, then the gone ones with the
// counters they had.
func (d *Daemon) Ports() []api.Port {
	devDrops := d.DeviceDrops() // takes d.mu itself, then asks the kernel
	d.mu.Lock()
	defer d.mu.Unlock()
	live := d.sw.Ports()
	out := make([]api.Port, 0, len(live)+len(d.pods))
	byName := make(map[string]*pod, len(d.pods))
	for _, p := range d.pods {
		byName[p.rec.Name] = p
	}
	for _, pi := range live {
		ap := api.PortFrom(pi)
		ap.State = api.PodUp
		if p, ok := byName[pi.Name]; ok {
			ap.Kind, ap.MAC, ap.IP, ap.IPs = api.KindPod, p.mac.String(), p.rec.IP, p.cidrs()
		} else if d.gw != nil && pi.Name == d.gw.name {
			ap.Kind, ap.MAC, ap.IP, ap.IPs = api.KindGateway, d.gw.mac.String(), d.gwAddr.String(), d.gwIPs()
		}
		if n, ok := devDrops[pi.Name]; ok {
			ap.DeviceDrops = &n
		}
		out = append(out, ap)
	}
	for _, n := range d.podNamesLocked() {
		p := d.pods[n]
		if p.link != nil {
			continue
		}
		pi := p.last
		pi.ID, pi.Name, pi.PVID = p.id, n, p.rec.VLAN
		ap := api.PortFrom(pi)
		ap.Kind, ap.State, ap.MAC, ap.IP, ap.IPs = api.KindPod, api.PodGone, p.mac.String(), p.rec.IP, p.cidrs()
		out = append(out, ap)
	}
	if d.gw != nil && d.gw.gone != "" {
		pi := d.gw.last
		pi.Name = d.gw.name
		ap := api.PortFrom(pi)
		ap.Kind, ap.State, ap.MAC, ap.IP, ap.IPs = api.KindGateway, api.PodGone, d.gw.mac.String(), d.gwAddr.String(), d.gwIPs()
		out = append(out, ap)
	}
	return out
}

// gwIPs are the gateway's addresses for the ports listing: bare, as its
// ip has always been.
func (d *Daemon) gwIPs() []string {
	if d.gwAddr6.IsValid() {
		return []string{d.gwAddr.String(), d.gwAddr6.String()}
	}
	return []string{d.gwAddr.String()}
}

func (d *Daemon) portNames() map[fdb.PortID]string {
	ports := d.sw.Ports()
	m := make(map[fdb.PortID]string, len(ports))
	for _, p := range ports {
		m[p.ID] = p.Name
	}
	return m
}

// FDB lists the forwarding table.
func (d *Daemon) FDB() []api.FDBEntry {
	names := d.portNames()
	now := d.sw.Now()
	ents := d.sw.FDB().Entries()
	out := make([]api.FDBEntry, 0, len(ents))
	for _, e := range ents {
		out = append(out, api.FDBEntryFrom(e, names[e.Port], now))
	}
	return out
}

// Neighbours lists the snooped ARP table.
func (d *Daemon) Neighbours() []api.Neighbour {
	names := d.portNames()
	now := d.sw.Now()
	ns := d.sw.ARP().Neighbours()
	out := make([]api.Neighbour, 0, len(ns))
	for _, n := range ns {
		out = append(out, api.NeighbourFrom(n, names[n.Port], now))
	}
	return out
}

// Stats reads the switch-wide counters.
func (d *Daemon) Stats() api.Stats {
	d.mu.Lock()
	up, gone := 0, 0
	for _, p := range d.pods {
		if p.link != nil {
			up++
		} else {
			gone++
		}
	}
	started := d.started
	d.mu.Unlock()
	ports := d.sw.Ports()
	st := api.Stats{
		Switch: d.cfg.Switch.Name, Uptime: time.Since(started).Seconds(), Ports: len(ports),
		PodsUp: up, PodsGone: gone, FDB: api.FDBStatsFrom(d.sw.FDB().Stats()), ARP: api.ARPStatsFrom(d.sw.ARP().Stats()),
	}
	st.Totals = api.CountersFrom(sumCounters(ports))
	return st
}

// sumCounters totals the ports' counters. DropMap is derived from the
// summed Drops (the non-zero reasons by name, as a port's snapshot has it)
// rather than summed separately: the two cannot disagree.
func sumCounters(ports []vswitch.PortInfo) vswitch.Counters {
	var t vswitch.Counters
	for _, p := range ports {
		c := p.Counters
		t.RxFrames += c.RxFrames
		t.RxBytes += c.RxBytes
		t.TxFrames += c.TxFrames
		t.TxBytes += c.TxBytes
		t.Flooded += c.Flooded
		t.Unknown += c.Unknown
		for i, v := range c.Drops {
			t.Drops[i] += v
		}
	}
	t.DropMap = make(map[string]uint64)
	for _, r := range vswitch.DropReasons() {
		if n := t.Drops[r]; n != 0 {
			t.DropMap[r.String()] = n
		}
	}
	return t
}
