package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/cmd/internal/monitor"
	"github.com/tapswitch/tapswitch/cmd/internal/state"
	"github.com/tapswitch/tapswitch/fdb"
	"github.com/tapswitch/tapswitch/internal/crashpoint"
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
	ip     netip.Prefix
	mac    fdb.MAC
	link   *link // nil when gone
	id     fdb.PortID
	reason string           // why it is gone
	last   vswitch.PortInfo // counters when the port was removed
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
	ip   netip.Prefix
	mac  fdb.MAC
	vlan uint16
	att  attachment
}

// check validates s against the configuration and the pods already there.
func (d *Daemon) checkLocked(s api.PodSpec) (spec, error) {
	if err := ValidName(s.Name); err != nil {
		return spec{}, err
	}
	out := spec{name: s.Name}
	if d.gw != nil && s.Name == d.gw.name {
		return spec{}, conflict("pod %q: name taken by the gateway port", s.Name)
	}
	if _, ok := d.pods[s.Name]; ok {
		return spec{}, conflict("pod %q: already exists", s.Name)
	}
	var err error
	if out.att, err = d.checkAttachmentLocked(s); err != nil {
		return spec{}, err
	}
	if s.IP == "" {
		return spec{}, invalid("pod %q: ip: required", s.Name)
	}
	if strings.ContainsRune(s.IP, '/') {
		out.ip, err = netip.ParsePrefix(s.IP)
		if err != nil {
			return spec{}, invalid("pod %q: ip %q: invalid CIDR", s.Name, s.IP)
		}
	} else {
		a, err := netip.ParseAddr(s.IP)
		if err != nil {
			return spec{}, invalid("pod %q: ip %q: invalid address", s.Name, s.IP)
		}
		out.ip = netip.PrefixFrom(a, d.subnet.Bits())
	}
	a := out.ip.Addr()
	switch {
	case !a.Is4():
		return spec{}, invalid("pod %q: ip %q: IPv4 only", s.Name, s.IP)
	case !d.subnet.Contains(a):
		return spec{}, invalid("pod %q: ip %q: outside the pod subnet %s", s.Name, s.IP, d.subnet)
	case out.ip.Bits() != d.subnet.Bits():
		return spec{}, invalid("pod %q: ip %q: prefix length /%d differs from the pod subnet %s", s.Name, s.IP, out.ip.Bits(), d.subnet)
	case a == d.subnet.Addr():
		return spec{}, invalid("pod %q: ip %q: the subnet's network address", s.Name, s.IP)
	case a == lastAddr(d.subnet):
		return spec{}, invalid("pod %q: ip %q: the subnet's broadcast address", s.Name, s.IP)
	case a == d.gwAddr:
		return spec{}, conflict("pod %q: ip %q: is the gateway's address", s.Name, s.IP)
	}
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
		if o.ip.Addr() == a {
			return spec{}, conflict("pod %q: ip %s: already used by pod %q", s.Name, a, name)
		}
		if o.mac == out.mac {
			return spec{}, conflict("pod %q: mac %s: already used by pod %q", s.Name, out.mac, name)
		}
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
	netnsName := d.cfg.NetnsPrefix + sp.name
	if sp.att.netns != "" {
		netnsName = sp.att.netns
	}
	if err := checkNetns(sp.name, netnsName, sp.att.ifName); err != nil {
		return api.Pod{}, err
	}
	t0 := time.Now()
	p := &pod{
		ip: sp.ip, mac: sp.mac,
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
	tc.Addr = sp.ip
	if !s.NoDefaultRoute {
		tc.Gateway = d.gwAddr
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
		zap.String("ip", p.rec.IP), zap.String("mac", p.rec.MAC), zap.Uint16("vlan", sp.vlan),
		zap.Bool("netns_created", p.rec.NetnsCreated), zap.String("offloads", dev.Offloads()),
		zap.String("container_id", p.rec.ContainerID), zap.String("ifname", p.rec.IfName),
		zap.Duration("took", time.Since(t0)))
	return d.podInfoLocked(p), nil
}

// checkNetns refuses a namespace that exists and already has a link named
// ifName (some other tool's pod), before anything is made. ns is a name or
// a path.
func checkNetns(pod, ns, ifName string) error {
	path := ns
	if !strings.ContainsRune(ns, '/') {
		path = tap.NetNSPath(ns)
	}
	if _, err := os.Stat(path); err != nil {
		return nil // missing: CreatePod makes it
	}
	err := tap.InNamespace(path, func() error {
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
	l := &link{name: p.rec.Name, dev: dev, poller: d.poller}
	if d.cfg.RxPPS > 0 {
		l.police = newPolicer(d.cfg.RxPPS)
	}
	l.onGone = func(err error) { d.podGone(p, l, err) }
	pc := vswitch.PortConfig{
		Name: p.rec.Name, PVID: p.rec.VLAN, MTU: d.cfg.Switch.MTU,
		IPs: []netip.Addr{p.ip.Addr()}, Storm: d.cfg.Switch.StormPPS,
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
	if err := l.start(d.sw, pc, d.cfg.Batch); err != nil {
		return err
	}
	p.link, p.id, p.reason = l, l.id, ""
	d.portEvent(monitor.PortAdded, p.rec.Name, l.id, api.KindPod, "")
	d.log.Info("port added", zap.String("port", p.rec.Name), zap.Uint32("id", uint32(l.id)),
		zap.String("kind", api.KindPod), zap.Int("queues", len(l.queues)))
	return nil
}

// reattach re-opens a pod of a previous run without reconfiguring it.
func (d *Daemon) reattach(rec state.Pod) {
	p := &pod{rec: rec}
	var err error
	if p.ip, err = netip.ParsePrefix(rec.IP); err != nil {
		d.log.Error("state: pod has a bad ip; forgetting it", zap.String("pod", rec.Name), zap.String("ip", rec.IP))
		return
	}
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
	d.log.Info("pod re-attached", zap.String("pod", rec.Name), zap.String("netns", rec.Netns), zap.String("ip", rec.IP))
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
