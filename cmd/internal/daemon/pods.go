package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/cmd/internal/monitor"
	"github.com/tapswitch/tapswitch/cmd/internal/state"
	"github.com/tapswitch/tapswitch/fdb"
	"github.com/tapswitch/tapswitch/internal/crashpoint"
	"github.com/tapswitch/tapswitch/netns"
	vswitch "github.com/tapswitch/tapswitch/switch"
	"github.com/tapswitch/tapswitch/tap"
)

// MaxPodName is the longest pod name: a DNS label, as Kubernetes names
// are. The name becomes the switch port's name and, behind the configured
// prefix, a file under /var/run/netns; no kernel interface carries it (the
// pod's TAP is eth0 inside its namespace), so IFNAMSIZ does not apply.
const MaxPodName = 63

// podIfName is the TAP's name inside the pod.
const podIfName = "eth0"

type pod struct {
	rec    state.Pod
	ip     netip.Prefix // the IPv4 address
	ip6    netip.Prefix // a dual-stack pod's IPv6 address; invalid if none
	mac    fdb.MAC
	link   *link // nil when gone
	id     fdb.PortID
	reason string           // why it is gone
	last   vswitch.PortInfo // counters when the port was removed
}

// addrs are the addresses the pod's port is bound to.
func (p *pod) addrs() []netip.Addr {
	if p.ip6.IsValid() {
		return []netip.Addr{p.ip.Addr(), p.ip6.Addr()}
	}
	return []netip.Addr{p.ip.Addr()}
}

// cidrs are the pod's addresses as the state file and the API give them,
// IPv4 first.
func (p *pod) cidrs() []string {
	if p.ip6.IsValid() {
		return []string{p.ip.String(), p.ip6.String()}
	}
	return []string{p.ip.String()}
}

// holder names a live pod in an error about what it holds: its name, and
// the container of a runtime's attachment.
func (p *pod) holder() string {
	if p.rec.ContainerID != "" {
		return fmt.Sprintf("pod %q (container %s)", p.rec.Name, p.rec.ContainerID)
	}
	return fmt.Sprintf("pod %q", p.rec.Name)
}

// frees is the command that frees what a live pod holds, for its errors.
func (p *pod) frees() string {
	return fmt.Sprintf("`tapswitch pod del %s` frees it", p.rec.Name)
}

func (p *pod) tapConfig() tap.PodConfig {
	return tap.PodConfig{Name: p.rec.Name, NetNS: p.rec.Netns, IfName: p.rec.IfName, Queues: p.rec.Queues}
}

// openConfig is p's TAP as this run opens it: its queues and read mode
// are the daemon's, whatever the previous run's were.
func (d *Daemon) openConfig(p *pod) tap.PodConfig {
	tc := p.tapConfig()
	tc.Queues, tc.Polled = d.cfg.Queues, d.poller != nil
	return tc
}

// DeriveMAC is the default MAC of an address: locally administered 02:00
// followed by the four bytes of the IPv4 address, so a pod keeps its MAC
// across re-creation and an operator reads the IP off the MAC.
func DeriveMAC(ip netip.Addr) fdb.MAC {
	a := ip.As4()
	return fdb.MAC{0x02, 0x00, a[0], a[1], a[2], a[3]}
}

// inputErr marks an error as the caller's fault (kind: api.ErrInvalid,
// ErrNotFound or ErrConflict) without changing its text.
type inputErr struct {
	kind error
	msg  string
}

func (e *inputErr) Error() string        { return e.msg }
func (e *inputErr) Is(target error) bool { return target == e.kind }

func invalid(format string, a ...any) error {
	return &inputErr{api.ErrInvalid, fmt.Sprintf(format, a...)}
}
func conflict(format string, a ...any) error {
	return &inputErr{api.ErrConflict, fmt.Sprintf(format, a...)}
}
func notFound(format string, a ...any) error {
	return &inputErr{api.ErrNotFound, fmt.Sprintf(format, a...)}
}

// ValidName checks a pod name: a DNS label (lower-case letters, digits and
// '-', starting and ending with a letter or digit) of at most MaxPodName.
func ValidName(name string) error {
	if name == "" {
		return invalid("pod name: must not be empty")
	}
	if len(name) > MaxPodName {
		return invalid("pod %q: name longer than %d characters", name, MaxPodName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(name)-1
		if !ok {
			return invalid("pod %q: invalid name: want lower-case letters, digits and '-', starting and ending with a letter or digit", name)
		}
	}
	return nil
}

// spec is a checked PodSpec.
type spec struct {
	name string
	ip   netip.Prefix // IPv4
	ip6  netip.Prefix // IPv6; invalid if none
	mac  fdb.MAC
	vlan uint16
	att  attachment
	// reclaim are the gone pods holding what the new pod asks for (its
	// name, an address, its MAC, its container or namespace), with why:
	// the add removes them first, so that a pod whose namespace vanished
	// never blocks the next one (host-local hands its address out again).
	reclaim map[*pod]string
}

// reclaimGone records a gone pod o that holds what the new pod wants; a
// pod found by several checks (its name, its addresses or MAC, its
// container or namespace) is logged with what each found (a namespace's
// nsfs inode, say, is reused by the next namespace made after it).
func (sp *spec) reclaimGone(o *pod, what string) {
	if sp.reclaim == nil {
		sp.reclaim = make(map[*pod]string)
	}
	// Each check names one kind of thing and visits a pod once, so what
	// is never already listed.
	if held, ok := sp.reclaim[o]; ok {
		what = held + "; " + what
	}
	sp.reclaim[o] = what
}

// check validates s against the configuration and the pods already there.
// What a gone pod holds is not a conflict: it is listed in reclaim.
func (d *Daemon) checkLocked(s api.PodSpec) (spec, error) {
	if err := ValidName(s.Name); err != nil {
		return spec{}, err
	}
	out := spec{name: s.Name}
	if d.gw != nil && s.Name == d.gw.name {
		return spec{}, conflict("pod %q: name taken by the gateway port", s.Name)
	}
	if o, ok := d.pods[s.Name]; ok {
		if o.link != nil {
			where := fmt.Sprintf("netns %q", o.rec.Netns)
			if o.rec.ContainerID != "" {
				where += ", container " + o.rec.ContainerID
			}
			return spec{}, conflict("pod %q: already exists (up, %s); %s", s.Name, where, o.frees())
		}
		out.reclaimGone(o, "name")
	}
	var err error
	if out.att, err = d.checkAttachmentLocked(s, &out); err != nil {
		return spec{}, err
	}
	ips := s.IPs
	if s.IP != "" {
		ips = append([]string{s.IP}, ips...)
	}
	if len(ips) == 0 {
		return spec{}, invalid("pod %q: ip: required", s.Name)
	}
	for _, ip := range ips {
		p, err := d.parsePodIP(s.Name, ip)
		if err != nil {
			return spec{}, err
		}
		fam, have := "IPv4", &out.ip
		if p.Addr().Is6() {
			fam, have = "IPv6", &out.ip6
		}
		if have.IsValid() {
			return spec{}, invalid("pod %q: ip %q: a second %s address (at most one of each family)", s.Name, ip, fam)
		}
		*have = p
	}
	if !out.ip.IsValid() {
		return spec{}, invalid("pod %q: ip %q: an IPv4 address in the pod subnet %s is required (IPv6 comes in addition)", s.Name, ips[0], d.subnet)
	}
	a := out.ip.Addr()
	if s.MAC == "" {
		out.mac = DeriveMAC(a)
	} else {
		m, err := fdb.ParseMAC(s.MAC)
		if err != nil {
			return spec{}, invalid("pod %q: mac %q: invalid MAC", s.Name, s.MAC)
		}
		if m.IsMulticast() || m.IsZero() {
			return spec{}, invalid("pod %q: mac %q: not a unicast address", s.Name, s.MAC)
		}
		out.mac = m
	}
	if d.gw != nil && out.mac == d.gw.mac {
		return spec{}, conflict("pod %q: mac %s: is the gateway's MAC", s.Name, out.mac)
	}
	for _, name := range d.podNamesLocked() {
		o := d.pods[name]
		var what string
		switch {
		case o.ip.Addr() == a:
			what = "ip " + a.String()
		case out.ip6.IsValid() && o.ip6.IsValid() && o.ip6.Addr() == out.ip6.Addr():
			what = "ip " + out.ip6.Addr().String()
		case o.mac == out.mac:
			what = "mac " + out.mac.String()
		default:
			continue
		}
		if o.link == nil {
			out.reclaimGone(o, what)
			continue
		}
		return spec{}, conflict("pod %q: %s: already used by %s; %s", s.Name, what, o.holder(), o.frees())
	}
	out.vlan = s.VLAN
	if out.vlan == 0 {
		out.vlan = vswitch.DefaultVLAN
	}
	if out.vlan >= fdb.MaxVLAN {
		return spec{}, invalid("pod %q: vlan %d: want 1-4094", s.Name, s.VLAN)
	}
	return out, nil
}

// parsePodIP reads one of a pod's addresses, CIDR or bare (which takes its
// subnet's length), and checks it against the node's subnet of its family.
func (d *Daemon) parsePodIP(name, s string) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.ContainsRune(s, '/') {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return p, invalid("pod %q: ip %q: invalid CIDR", name, s)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return p, invalid("pod %q: ip %q: invalid address", name, s)
		}
		bits := d.subnet.Bits()
		if a.Is6() {
			bits = d.subnet6.Bits()
		}
		p = netip.PrefixFrom(a, bits)
	}
	a := p.Addr()
	sub, gw, last := d.subnet, d.gwAddr, netip.Addr{}
	switch {
	case a.Is4In6():
		return p, invalid("pod %q: ip %q: an IPv4-mapped IPv6 address; give the IPv4 address", name, s)
	case a.Is6() && !d.subnet6.IsValid():
		return p, invalid("pod %q: ip %q: IPv6, but the node has no IPv6 pod subnet (subnet_v6)", name, s)
	case a.Is6():
		sub, gw = d.subnet6, d.gwAddr6
	default:
		last = lastAddr(sub)
	}
	switch {
	case !sub.Contains(a):
		return p, invalid("pod %q: ip %q: outside the pod subnet %s", name, s, sub)
	case p.Bits() != sub.Bits():
		return p, invalid("pod %q: ip %q: prefix length /%d differs from the pod subnet %s", name, s, p.Bits(), sub)
	case a == sub.Addr() && a.Is4():
		return p, invalid("pod %q: ip %q: the subnet's network address", name, s)
	case a == sub.Addr():
		return p, invalid("pod %q: ip %q: the subnet's router anycast address", name, s)
	case a == last:
		return p, invalid("pod %q: ip %q: the subnet's broadcast address", name, s)
	case a == gw:
		return p, conflict("pod %q: ip %q: is the gateway's address", name, s)
	}
	return p, nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= uint32(1)<<(32-p.Bits()) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// AddPod creates a pod: its namespace if missing, a TAP configured as eth0
// with the address and a default route via the gateway, and a switch port
// bound to the address for the ARP guard. Whatever fails undoes all of it.
func (d *Daemon) AddPod(ctx context.Context, s api.PodSpec) (api.Pod, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.addLocked(ctx, s, false)
}

func (d *Daemon) addLocked(ctx context.Context, s api.PodSpec, static bool) (api.Pod, error) {
	if d.closed {
		return api.Pod{}, errors.New("daemon is shutting down")
	}
	sp, err := d.checkLocked(s)
	if err != nil {
		return api.Pod{}, err
	}
	if err := ctx.Err(); err != nil {
		return api.Pod{}, err
	}
	if err := d.reclaimLocked(sp); err != nil {
		return api.Pod{}, err
	}
	netnsName := d.cfg.NetnsPrefix + sp.name
	if sp.att.netns != "" {
		netnsName = sp.att.netns
	}
	if err := checkNetns(sp.name, netnsName, sp.att.ifName); err != nil {
		return api.Pod{}, err
	}
	t0 := time.Now()
	p := &pod{
		ip: sp.ip, ip6: sp.ip6, mac: sp.mac,
		rec: state.Pod{
			Name: sp.name, Netns: netnsName, IfName: sp.att.ifName,
			IP: sp.ip.String(), MAC: sp.mac.String(), VLAN: sp.vlan, Queues: d.cfg.Queues,
			Static: static, Created: time.Now().UTC(),
			NetnsInode: sp.att.netnsIno, ContainerID: sp.att.containerID, Network: sp.att.network,
		},
	}
	tc := d.openConfig(p)
	tc.MAC = sp.mac.HardwareAddr()
	tc.MTU = d.cfg.Switch.MTU
	tc.TxQueueLen = d.cfg.TxQueueLen
	tc.Addr, tc.Addr6 = sp.ip, sp.ip6
	if sp.ip6.IsValid() {
		p.rec.IPs = p.cidrs()
	}
	if !s.NoDefaultRoute {
		tc.Gateway = d.gwAddr
		if sp.ip6.IsValid() {
			tc.Gateway6 = d.gwAddr6
		}
	}
	// The intent goes to disk before the first change (intent.go).
	if err := d.beginAdd(p); err != nil {
		return api.Pod{}, fmt.Errorf("pod %q: %w", sp.name, err)
	}
	dev, err := tap.CreatePod(tc) // removes what it made when it fails
	if err != nil {
		d.endOp(sp.name)
		return api.Pod{}, err
	}
	crashpoint.Hit("add-created")
	p.rec.NetnsCreated = dev.CreatedNetNS()
	undo := func(cause error) error {
		dev.Close()
		if derr := tap.DeletePod(p.tapConfig(), p.rec.NetnsCreated); derr != nil {
			d.log.Error("rollback of a failed pod add incomplete", zap.String("pod", sp.name), zap.Error(derr))
			return errors.Join(cause, fmt.Errorf("rollback: %w", derr))
		}
		d.endOp(sp.name)
		return cause
	}
	if sp.att.netns != "" && p.rec.NetnsCreated {
		// The runtime's namespace vanished between the check and the
		// creation, and a named one was made in its place: not the pod's.
		return api.Pod{}, undo(fmt.Errorf("pod %q: netns %q: vanished while the pod was added", sp.name, sp.att.netns))
	}
	if err := d.markPod(p); err != nil {
		return api.Pod{}, undo(fmt.Errorf("pod %q: %w", sp.name, err))
	}
	crashpoint.Hit("add-marked")
	if err := d.attachLocked(p, dev); err != nil {
		return api.Pod{}, undo(fmt.Errorf("pod %q: %w", sp.name, err))
	}
	d.pods[sp.name] = p
	if err := d.saveLocked(); err != nil {
		delete(d.pods, sp.name)
		d.sw.RemovePort(p.link.id)
		p.link.stop()
		return api.Pod{}, undo(fmt.Errorf("pod %q: %w", sp.name, err))
	}
	crashpoint.Hit("add-saved")
	d.endOp(sp.name)
	d.log.Info("pod added", zap.String("pod", sp.name), zap.String("netns", p.rec.Netns),
		zap.Strings("ips", p.cidrs()), zap.String("mac", p.rec.MAC), zap.Uint16("vlan", sp.vlan),
		zap.Bool("netns_created", p.rec.NetnsCreated), zap.String("offloads", dev.Offloads()),
		zap.String("container_id", p.rec.ContainerID), zap.String("ifname", p.rec.IfName),
		zap.Duration("took", time.Since(t0)))
	return d.podInfoLocked(p), nil
}

// reclaimLocked removes the gone pods that hold what sp asks for: their
// records, and whatever of their TAP and namespace is left (a runtime's
// namespace that vanished took the TAP with it). Their ports left the
// switch, with their address bindings, when they went. The state file is
// saved at once, so that a failure of the add further on does not bring
// them back at the next start.
func (d *Daemon) reclaimLocked(sp spec) error {
	if len(sp.reclaim) == 0 {
		return nil
	}
	gone := make([]*pod, 0, len(sp.reclaim))
	for o := range sp.reclaim {
		gone = append(gone, o)
	}
	sort.Slice(gone, func(i, j int) bool { return gone[i].rec.Name < gone[j].rec.Name })
	for _, o := range gone {
		if err := d.deleteOwned(o); err != nil {
			return fmt.Errorf("pod %q: reclaiming the %s of gone pod %q: %w", sp.name, sp.reclaim[o], o.rec.Name, err)
		}
		delete(d.pods, o.rec.Name)
		d.log.Info("gone pod reclaimed", zap.String("pod", o.rec.Name), zap.String("reason", o.reason),
			zap.String("by", sp.name), zap.String("held", sp.reclaim[o]),
			zap.Strings("ips", o.cidrs()), zap.String("container_id", o.rec.ContainerID))
	}
	return d.saveLocked()
}

// checkNetns refuses a namespace that exists and already has a link named
// ifName (some other tool's pod), before anything is made. ns is a name or
// a path.
func checkNetns(pod, ns, ifName string) error {
	n, err := netns.Parse(ns)
	if err != nil {
		return invalid("pod %q: %v", pod, err)
	}
	if _, err := os.Stat(n.Path()); err != nil {
		return nil // missing: CreatePod makes it
	}
	err = n.Run(func() error {
		_, err := netlink.LinkByName(ifName)
		return err
	})
	var nf netlink.LinkNotFoundError
	switch {
	case err == nil:
		return conflict("pod %q: netns %q already has an %s", pod, ns, ifName)
	case errors.As(err, &nf):
		return nil
	}
	return fmt.Errorf("pod %q: netns %q: %w", pod, ns, err)
}

// attachLocked makes dev the pod's port and starts its readers.
func (d *Daemon) attachLocked(p *pod, dev *tap.Device) error {
	pc := vswitch.PortConfig{
		Name: p.rec.Name, PVID: p.rec.VLAN, MTU: d.cfg.Switch.MTU,
		IPs: p.addrs(), Storm: d.cfg.Switch.StormPPS,
	}
	if d.cfg.Switch.LockPodMAC {
		pc.LockMAC = p.mac
		// The TAP drops foreign sources too, before the switch reads
		// them; the switch's check stays as the second line.
		if err := dev.LockSource(p.mac.HardwareAddr()); err != nil {
			d.log.Warn("source lock not set in the kernel; the switch still checks", zap.String("pod", p.rec.Name), zap.Error(err))
		}
	} else if err := dev.UnlockSource(); err != nil {
		// A lock from a run with lock_pod_mac on stays with the device.
		d.log.Warn("source lock of an earlier run not removed", zap.String("pod", p.rec.Name), zap.Error(err))
	}
	l, err := d.startLink(dev, pc, d.cfg.RxPPS, func(l *link, err error) { d.podGone(p, l, err) })
	if err != nil {
		return err
	}
	p.link, p.id, p.reason = l, l.id, ""
	d.portEvent(monitor.PortAdded, p.rec.Name, l.id, api.KindPod, "")
	d.log.Info("port added", zap.String("port", p.rec.Name), zap.Uint32("id", uint32(l.id)),
		zap.String("kind", api.KindPod), zap.Int("queues", len(l.dev.Queues())))
	return nil
}

// reattach re-opens a pod of a previous run without reconfiguring it.
func (d *Daemon) reattach(rec state.Pod) {
	p := &pod{rec: rec}
	for _, s := range rec.Addrs() {
		a, err := netip.ParsePrefix(s)
		switch {
		case err == nil && a.Addr().Is4() && !p.ip.IsValid():
			p.ip = a
		case err == nil && a.Addr().Is6() && !p.ip6.IsValid():
			p.ip6 = a
		default:
			d.log.Error("state: pod has a bad ip; forgetting it", zap.String("pod", rec.Name), zap.String("ip", s))
			return
		}
	}
	if !p.ip.IsValid() {
		d.log.Error("state: pod has no IPv4 address; forgetting it", zap.String("pod", rec.Name), zap.String("ip", rec.IP))
		return
	}
	var err error
	if p.mac, err = fdb.ParseMAC(rec.MAC); err != nil {
		p.mac = DeriveMAC(p.ip.Addr())
	}
	if p.rec.IfName == "" {
		p.rec.IfName = podIfName
	}
	d.pods[rec.Name] = p
	if err := p.sameNetns(); err != nil {
		p.reason = err.Error()
		d.log.Warn("pod not re-attached; reported gone", zap.String("pod", rec.Name), zap.Error(err))
		return
	}
	if err := d.claim(p); err != nil {
		p.reason = err.Error()
		d.log.Warn("pod not re-attached; reported gone", zap.String("pod", rec.Name), zap.Error(err))
		return
	}
	dev, err := tap.Attach(d.openConfig(p))
	if err != nil {
		p.reason = err.Error()
		d.log.Warn("pod not re-attached; reported gone", zap.String("pod", rec.Name), zap.Error(err))
		return
	}
	p.rec.Queues = len(dev.Queues())
	if err := d.attachLocked(p, dev); err != nil {
		dev.Close()
		p.reason = err.Error()
		d.log.Warn("pod not re-attached; reported gone", zap.String("pod", rec.Name), zap.Error(err))
		return
	}
	d.reattached++
	d.log.Info("pod re-attached", zap.String("pod", rec.Name), zap.String("netns", rec.Netns), zap.Strings("ips", p.cidrs()))
}

// podGone handles a pod whose TAP or namespace vanished under its readers:
// the port leaves the switch (flushing its FDB entries and neighbours) and
// the pod is listed gone until `pod del`. The other ports keep forwarding.
func (d *Daemon) podGone(p *pod, l *link, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.pods[p.rec.Name] != p || p.link != l {
		return // deleted or stopped meanwhile
	}
	p.last, _ = d.sw.Port(l.id)
	d.sw.RemovePort(l.id)
	l.stop()
	p.link = nil
	p.reason = reason(err)
	d.portEvent(monitor.PortGone, p.rec.Name, l.id, api.KindPod, p.reason)
	d.log.Warn("pod port gone", zap.String("pod", p.rec.Name), zap.Uint32("id", uint32(l.id)),
		zap.String("reason", p.reason), zap.Error(err))
}

// DeletePod removes a pod's port (flushing its FDB entries), its TAP and,
// when tapswitch created it, its namespace.
func (d *Daemon) DeletePod(ctx context.Context, name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := ValidName(name); err != nil {
		return err
	}
	p, ok := d.pods[name]
	if !ok {
		return notFound("pod %q: no such pod", name)
	}
	// Never delete what another daemon marked: forget the pod instead.
	// Then the intent, on disk before the first change (intent.go).
	if err := d.checkOwned(p); err != nil {
		return d.forgetLocked(p, err)
	}
	if err := d.beginDel(p); err != nil {
		return fmt.Errorf("pod %q: %w", name, err)
	}
	flushed := 0
	if p.link != nil {
		flushed = d.sw.FDB().PortEntries(p.link.id)
		d.portEvent(monitor.PortRemoved, p.rec.Name, p.link.id, api.KindPod, "")
		d.sw.RemovePort(p.link.id)
		p.link.stop()
		p.link = nil
		p.reason = "being deleted"
	}
	if err := p.deleteTAP(); err != nil {
		p.reason = "delete failed: " + err.Error()
		d.saveLocked()
		d.endOp(name)
		return err
	}
	crashpoint.Hit("del-deleted")
	delete(d.pods, name)
	if err := d.saveLocked(); err != nil {
		return err
	}
	crashpoint.Hit("del-saved")
	d.endOp(name)
	d.log.Info("pod deleted", zap.String("pod", name), zap.Uint32("id", uint32(p.id)),
		zap.Int("fdb_flushed", flushed), zap.Bool("netns_deleted", p.rec.NetnsCreated))
	return nil
}
