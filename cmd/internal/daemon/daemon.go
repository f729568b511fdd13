// Package daemon is the tapswitch node daemon: one switch, the gateway TAP
// in the host namespace and a TAP per pod, joined by the dataplane
// package; the pods it made are remembered in a state file and
// re-attached after a restart, without touching their configuration.
// It implements api.Backend.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap"

	"github.com/tapswitch/tapswitch/arp"
	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/cmd/internal/config"
	"github.com/tapswitch/tapswitch/cmd/internal/hostnat"
	"github.com/tapswitch/tapswitch/cmd/internal/monitor"
	"github.com/tapswitch/tapswitch/cmd/internal/state"
	"github.com/tapswitch/tapswitch/dataplane"
	"github.com/tapswitch/tapswitch/fdb"
	vswitch "github.com/tapswitch/tapswitch/switch"
	"github.com/tapswitch/tapswitch/tap"
)

// Daemon owns the switch and its ports.
type Daemon struct {
	cfg    config.Config
	log    *zap.Logger
	subnet netip.Prefix
	gwAddr netip.Addr
	// subnet6 and gwAddr6 are the IPv6 pod subnet and gateway address of
	// dual-stack pods; invalid when subnet_v6 is not set.
	subnet6 netip.Prefix
	gwAddr6 netip.Addr
	sw      *vswitch.Switch
	store   *state.Store

	// mu serialises the control path (pod add and delete, gone ports,
	// listings of pods). The frame path never takes it.
	mu         sync.Mutex
	pods       map[string]*pod
	gw         *gateway
	nat        *hostnat.Rules    // nil when no NAT rule is configured
	poller     *dataplane.Poller // reads every TAP when spin > 0; nil: reader goroutines
	started    time.Time
	reattached int
	closed     bool
	instance   string // the owner in the marks on what the daemon makes (owner.go)
	running    bool   // Start succeeded

	tickStop chan struct{}
	tickDone chan struct{}

	observers // events, metrics, captures
}

type gateway struct {
	name string
	mac  fdb.MAC
	link *link
	last vswitch.PortInfo
	gone string // why the gateway port was removed; "" while up
}

// Option adjusts the switch New builds.
type Option func(*vswitch.Config)

// WithTracer has the switch tell t the fate of every frame. The demo uses it
// to explain what happened; a node never does (it costs a call per frame).
func WithTracer(t vswitch.Tracer) Option {
	return func(c *vswitch.Config) { c.Tracer = t }
}

// New checks the configuration and builds the switch; it changes nothing on
// the host until Start.
func New(cfg config.Config, log *zap.Logger, opts ...Option) (*Daemon, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	sub, _ := cfg.SubnetPrefix()
	gw, _ := cfg.GatewayAddr()
	sub6, gw6, _ := cfg.IPv6()
	fc, _ := cfg.FDBConfig()
	sc := vswitch.Config{
		Name:      cfg.Switch.Name,
		HeaderLen: vswitch.VnetHdrLen,
		MTU:       cfg.Switch.MTU,
		FDB:       fc,
		ARP:       arp.Config{Ageing: cfg.ARP.Ageing, Suppress: cfg.ARP.Suppress, Guard: cfg.ARP.Guard, PodRouterAdvertisements: cfg.ARP.PodRouterAdvertisements},
	}
	for _, o := range opts {
		o(&sc)
	}
	sw, err := vswitch.New(sc)
	if err != nil {
		return nil, err
	}
	return &Daemon{
		cfg: cfg, log: log, subnet: sub, gwAddr: gw, subnet6: sub6, gwAddr6: gw6, sw: sw,
		pods: make(map[string]*pod),
	}, nil
}

// Switch is the daemon's switch, for tests and the demo's explanations.
func (d *Daemon) Switch() *vswitch.Switch { return d.sw }

// PolledPorts counts the live ports (pods and gateway) and those of them
// whose queues the poller reads (spin > 0) rather than reader goroutines.
func (d *Daemon) PolledPorts() (polled, live int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	count := func(l *link) {
		if l != nil {
			live++
			if l.port.Polled() {
				polled++
			}
		}
	}
	for _, p := range d.pods {
		count(p.link)
	}
	if d.gw != nil && d.gw.gone == "" {
		count(d.gw.link)
	}
	return polled, live
}

// Start brings up the gateway, re-attaches the pods of the previous run,
// creates the configured static pods and starts ageing. Pods that cannot be
// re-attached are reported gone, not fatal; a gateway that cannot be set up
// is fatal.
func (d *Daemon) Start(ctx context.Context) error {
	t0 := time.Now()
	store, err := state.Open(d.cfg.StateDir)
	if err != nil {
		return err
	}
	d.store = store
	st, err := store.Load()
	if err == nil {
		d.instance, err = store.Instance()
	}
	if err == nil {
		// Every single-instance check before the first change on the host.
		err = d.preflightLocked()
	}
	if err != nil {
		store.Close()
		d.store = nil
		return err
	}
	if st.Subnet != "" && st.Subnet != d.subnet.String() {
		d.log.Warn("state file's pods are in another subnet than the configuration",
			zap.String("state_subnet", st.Subnet), zap.Stringer("subnet", d.subnet), zap.String("state", store.Path()))
	}
	if st.SubnetV6 != "" && st.SubnetV6 != d.subnet6.String() {
		// Pods keep the IPv6 addresses they have; new ones get the
		// configured subnet's.
		d.log.Warn("state file's pods are in another IPv6 subnet than the configuration",
			zap.String("state_subnet_v6", st.SubnetV6), zap.String("subnet_v6", d.cfg.SubnetV6), zap.String("state", store.Path()))
	}
	d.started = time.Now()
	fc := d.sw.FDB().Config()
	d.log.Info("switch starting", zap.String("switch", d.cfg.Switch.Name), zap.Stringer("subnet", d.subnet),
		zap.Stringer("gateway", d.gwAddr), zap.String("subnet_v6", d.cfg.SubnetV6), zap.String("gateway_v6", d.gw6String()),
		zap.Duration("fdb_ageing", fc.Ageing), zap.Int("fdb_limit", fc.Limit),
		zap.Int("fdb_port_limit", fc.PortLimit), zap.Stringer("fdb_policy", fc.Policy),
		zap.Bool("arp_suppress", d.cfg.ARP.Suppress), zap.Bool("arp_guard", d.cfg.ARP.Guard),
		zap.Int("queues", d.cfg.Queues), zap.String("state", store.Path()))

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cfg.Spin > 0 {
		if d.poller, err = dataplane.NewPoller(tap.PollerConfig{Spin: d.cfg.Spin, Batch: d.cfg.Batch, CPU: d.cfg.SpinCPU}); err != nil {
			store.Close()
			d.store = nil
			return err
		}
		d.log.Info("poller started", zap.Duration("spin", d.cfg.Spin), zap.Int("cpu", d.cfg.SpinCPU))
	}
	if err := d.startGateway(st.Gateway != nil); err != nil {
		d.stopAllLocked()
		return err
	}
	if err := d.startNAT(); err != nil {
		d.stopAllLocked()
		return err
	}
	if err := d.finishIntentsLocked(st); err != nil {
		d.stopAllLocked()
		return err
	}
	for _, rec := range st.Pods {
		d.reattach(rec)
	}
	// After the known pods forward again: the scan enters every namespace.
	known := len(st.Pods)
	d.adoptLocked(st)
	for _, rec := range st.Pods[known:] {
		d.reattach(rec)
	}
	if err := d.saveLocked(); err != nil {
		d.stopAllLocked()
		return err
	}
	d.log.Info("switch started", zap.Int("pods", len(d.pods)), zap.Int("reattached", d.reattached),
		zap.Duration("took", time.Since(t0)))
	for _, ps := range d.cfg.Pods {
		// A gone one is made again: the add reclaims it.
		if p, ok := d.pods[ps.Name]; ok && p.link != nil {
			if p.rec.IP != ps.IP && p.ip.Addr().String() != ps.IP { // IPv4 alone: the pod's name and MAC go with it
				d.log.Warn("static pod exists with another address; not changing it", zap.String("pod", ps.Name),
					zap.String("ip", p.rec.IP), zap.String("config_ip", ps.IP))
			}
			continue
		}
		if _, err := d.addLocked(ctx, api.PodSpec{Name: ps.Name, IP: ps.IP, IPs: ps.IPs, MAC: ps.MAC, VLAN: ps.VLAN}, true); err != nil {
			d.log.Error("static pod not created", zap.String("pod", ps.Name), zap.Error(err))
		}
	}
	d.tickStop, d.tickDone = make(chan struct{}), make(chan struct{})
	go d.ticker()
	if err := d.startObservers(); err != nil {
		d.log.Error("not starting: observers", zap.Error(err))
		close(d.tickStop)
		<-d.tickDone
		d.tickStop = nil
		d.stopAllLocked()
		return err
	}
	d.running = true
	return nil
}

// startGateway re-attaches the persistent gateway TAP, or creates it.
func (d *Daemon) startGateway(hadOne bool) error {
	name := d.cfg.Gateway.Interface
	prefix, prefix6 := d.gwPrefixes()
	dev, err := tap.AttachGateway(name, d.cfg.Queues, d.poller != nil)
	var nf netlink.LinkNotFoundError
	switch {
	case err == nil:
		for _, p := range []netip.Prefix{prefix, prefix6} {
			if !p.IsValid() {
				continue
			}
			if err := ensureAddr(name, p); err != nil {
				dev.Close()
				return err
			}
		}
		d.log.Info("gateway re-attached", zap.String("interface", name), zap.Stringer("address", prefix), zap.String("address_v6", prefixString(prefix6)))
	case errors.As(err, &nf):
		if hadOne {
			d.log.Warn("gateway TAP was gone; creating it again", zap.String("interface", name))
		}
		mac, err := d.gatewayMAC()
		if err != nil {
			return err
		}
		dev, err = tap.CreateGateway(tap.GatewayConfig{
			Name: name, Addr: prefix, Addr6: prefix6, MAC: mac.HardwareAddr(), MTU: d.cfg.Switch.MTU, Queues: d.cfg.Queues,
			TxQueueLen: d.cfg.TxQueueLen, Polled: d.poller != nil,
		})
		if err != nil {
			return err
		}
		d.log.Info("gateway created", zap.String("interface", name), zap.Stringer("address", prefix), zap.String("address_v6", prefixString(prefix6)),
			zap.Stringer("mac", mac), zap.String("offloads", dev.Offloads()))
	default:
		return err
	}
	if err := setAlias(name, d.mark()); err != nil {
		dev.Close()
		return fmt.Errorf("gateway: %w", err)
	}
	gw := &gateway{name: name, mac: fdb.MACFrom(dev.MAC())}
	gw.link, err = d.startLink(dev, vswitch.PortConfig{Name: name, MTU: d.cfg.Switch.MTU}, 0, func(_ *link, err error) { d.gatewayGone(gw, err) })
	if err != nil {
		dev.Close()
		return fmt.Errorf("gateway: %w", err)
	}
	// The gateway's own MAC, as the bridge keeps its own address: frames to
	// it never flood.
	if err := d.sw.FDB().AddStatic(vswitch.DefaultVLAN, gw.mac, gw.link.id, fdb.Local); err != nil {
		d.log.Warn("gateway MAC not added to the FDB", zap.Error(err))
	}
	d.gw = gw
	d.log.Info("port added", zap.String("port", name), zap.Uint32("id", uint32(gw.link.id)), zap.String("kind", api.KindGateway))
	return nil
}

// gwPrefixes are the gateway's addresses with their subnets' lengths; the
// IPv6 one is invalid without subnet_v6.
func (d *Daemon) gwPrefixes() (v4, v6 netip.Prefix) {
	v4 = netip.PrefixFrom(d.gwAddr, d.subnet.Bits())
	if d.gwAddr6.IsValid() {
		v6 = netip.PrefixFrom(d.gwAddr6, d.subnet6.Bits())
	}
	return v4, v6
}

// gw6String is the gateway's IPv6 address, "" without one.
func (d *Daemon) gw6String() string {
	if !d.gwAddr6.IsValid() {
		return ""
	}
	return d.gwAddr6.String()
}

func prefixString(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}

// natConfig is the nat section in hostnat's terms.
func (d *Daemon) natConfig() hostnat.Config {
	nc := hostnat.Config{
		Table: d.cfg.NAT.Table, Gateway: d.cfg.Gateway.Interface, Subnet: d.subnet,
		ServiceMasquerade: d.cfg.NAT.ServiceMasquerade, Owner: d.mark(),
	}
	if d.cfg.NAT.Masquerade.Enabled {
		nc.ClusterCIDR, _ = d.cfg.NAT.ClusterCIDR() // checked by Validate
	}
	return nc
}

// startNAT installs the nftables table in the namespace the daemon runs in
// (replacing a previous run's), unless no rule is configured.
func (d *Daemon) startNAT() error {
	nc := d.natConfig()
	if nc.Empty() {
		return nil
	}
	r, err := hostnat.Install(nc)
	if err != nil {
		return fmt.Errorf("nat (set nat.service_masquerade and nat.masquerade.enabled to false to run without): %w", err)
	}
	d.nat = r
	outside := "off"
	if nc.ClusterCIDR.IsValid() {
		outside = "not " + nc.ClusterCIDR.String()
	}
	d.log.Info("nat rules installed", zap.String("table", "inet "+nc.Table),
		zap.Bool("service_masquerade", nc.ServiceMasquerade), zap.String("masquerade_outside", outside))
	return nil
}

// stopNAT deletes the nftables table.
func (d *Daemon) stopNAT() error {
	if d.nat == nil {
		return nil
	}
	err := d.nat.Remove()
	if err == nil {
		d.log.Info("nat rules removed", zap.String("table", "inet "+d.nat.Config().Table))
	}
	d.nat = nil
	return err
}

func (d *Daemon) gatewayMAC() (fdb.MAC, error) {
	if d.cfg.Gateway.MAC != "" {
		return fdb.ParseMAC(d.cfg.Gateway.MAC)
	}
	return DeriveMAC(d.gwAddr), nil
}

// ensureAddr puts a gateway address back on a re-attached gateway TAP if
// someone removed it (or, for IPv6, if dual-stack was configured since);
// an address that is there is left alone.
func ensureAddr(name string, p netip.Prefix) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	family := netlink.FAMILY_V4
	if p.Addr().Is6() {
		family = netlink.FAMILY_V6
	}
	addrs, err := netlink.AddrList(l, family)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return fmt.Errorf("gateway %q: %w", name, err)
	}
	for _, a := range addrs {
		if a.IPNet != nil && a.IPNet.IP.Equal(p.Addr().AsSlice()) {
			return nil
		}
	}
	if err := netlink.AddrReplace(l, tap.NetlinkAddr(p)); err != nil {
		return fmt.Errorf("gateway %q: address %s: %w", name, p, err)
	}
	if l.Attrs().Flags&1 == 0 { // net.FlagUp
		netlink.LinkSetUp(l)
	}
	return nil
}

func (d *Daemon) gatewayGone(gw *gateway, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.gw != gw || gw.gone != "" {
		return
	}
	gw.last, _ = d.sw.Port(gw.link.id)
	d.sw.RemovePort(gw.link.id)
	gw.link.stop()
	gw.gone = reason(err)
	d.portEvent(monitor.PortGone, gw.name, gw.link.id, api.KindGateway, gw.gone)
	d.log.Error("gateway port gone; pods lose the node until the daemon restarts",
		zap.String("port", gw.name), zap.Error(err))
}

// reason words a reader's error for listings.
func reason(err error) string {
	if tap.IsGone(err) {
		return "tap or netns deleted"
	}
	return err.Error()
}

// ticker ages the tables once a second and reports the FDB's limits being
// hit: at most one line per interval, never one per frame.
func (d *Daemon) ticker() {
	defer close(d.tickDone)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last fdb.Stats
	full := false
	var lastLog time.Time
	for {
		select {
		case <-d.tickStop:
			return
		case <-t.C:
		}
		d.sw.Tick()
		st := d.sw.FDB().Stats()
		refused, evicted := st.Refused-last.Refused, st.Evicted-last.Evicted
		flaps := st.Flaps - last.Flaps
		switch {
		case refused+evicted > 0 && (!full || time.Since(lastLog) >= 30*time.Second):
			d.log.Warn("fdb limit reached", zap.Int("entries", st.Entries), zap.Int("limit", st.Limit),
				zap.Stringer("policy", d.sw.FDB().Config().Policy),
				zap.Uint64("refused", refused), zap.Uint64("evicted", evicted))
			full, lastLog = true, time.Now()
		case refused+evicted == 0 && full:
			d.log.Info("fdb below its limit again", zap.Int("entries", st.Entries), zap.Int("limit", st.Limit),
				zap.Uint64("refused_total", st.Refused), zap.Uint64("evicted_total", st.Evicted))
			full = false
		}
		if flaps > 0 {
			d.log.Warn("MACs flapping between ports (a loop or a spoofer)", zap.Uint64("flaps", flaps))
		}
		last = st
	}
}

// Close stops forwarding and closes every TAP. With removePods it also
// deletes the pods (their TAPs and the namespaces tapswitch made), the
// gateway and the state file; without, they stay for the next start.
func (d *Daemon) Close(removePods bool) error {
	d.stopObservers() // before d.mu: the event feed takes it
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	if d.tickStop != nil {
		close(d.tickStop)
		<-d.tickDone
	}
	var errs []error
	errs = append(errs, d.stopNAT())
	names := d.podNamesLocked()
	for _, name := range names {
		p := d.pods[name]
		if p.link != nil {
			d.sw.RemovePort(p.link.id)
			p.link.stop()
			p.link = nil
		}
		if removePods {
			if err := d.deleteOwned(p); err != nil {
				errs = append(errs, err)
				continue
			}
			delete(d.pods, name)
			d.log.Info("pod deleted", zap.String("pod", name))
		}
	}
	if d.gw != nil {
		if d.gw.gone == "" {
			d.sw.RemovePort(d.gw.link.id)
			d.gw.link.stop()
		}
		if removePods {
			if err := tap.DeleteGateway(d.gw.name); err != nil {
				errs = append(errs, err)
			} else {
				d.log.Info("gateway deleted", zap.String("interface", d.gw.name))
				d.gw = nil
			}
		}
	}
	if d.store != nil {
		if removePods && len(d.pods) == 0 && d.gw == nil {
			errs = append(errs, d.store.Remove())
		} else {
			errs = append(errs, d.saveLocked())
		}
	}
	if d.store != nil {
		errs = append(errs, d.store.Close())
	}
	if d.poller != nil {
		d.poller.Close()
	}
	d.sw.Close()
	if d.running {
		// Not after a refused start, which ends with its error instead.
		d.log.Info("switch stopped", zap.Bool("pods_removed", removePods), zap.Int("pods_kept", len(d.pods)))
	}
	return errors.Join(errs...)
}

// stopAllLocked undoes Start's attachments after a failure in Start.
func (d *Daemon) stopAllLocked() {
	if err := d.stopNAT(); err != nil {
		d.log.Error("nat rules not removed", zap.Error(err))
	}
	for _, p := range d.pods {
		if p.link != nil {
			d.sw.RemovePort(p.link.id)
			p.link.stop()
			p.link = nil
		}
	}
	if d.gw != nil && d.gw.gone == "" {
		d.sw.RemovePort(d.gw.link.id)
		d.gw.link.stop()
	}
	d.closed = true
	d.store.Close()
	if d.poller != nil {
		d.poller.Close()
	}
	d.sw.Close()
}

func (d *Daemon) podNamesLocked() []string {
	names := make([]string, 0, len(d.pods))
	for n := range d.pods {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// saveLocked writes the state file from the pods in memory.
func (d *Daemon) saveLocked() error {
	st := &state.State{Switch: d.cfg.Switch.Name, Subnet: d.subnet.String(), SubnetV6: d.cfg.SubnetV6}
	if d.gw != nil {
		v4, v6 := d.gwPrefixes()
		st.Gateway = &state.Gateway{Interface: d.gw.name, Address: v4.String(), AddressV6: prefixString(v6), MAC: d.gw.mac.String()}
	}
	for _, name := range d.podNamesLocked() {
		st.Pods = append(st.Pods, d.pods[name].rec)
	}
	return d.store.Save(st)
}

// Run is `tapswitch run`: start, serve the control API until ctx ends, then
// stop (removing the pods only if configured to).
//
// With a Reloader, each of its signals reloads the configuration (Reload).
func Run(ctx context.Context, cfg config.Config, log *zap.Logger, reload ...*Reloader) error {
	// First, so that every thread the daemon starts inherits it.
	if cfg.Nice != 0 {
		if err := setNice(cfg.Nice); err != nil {
			return err
		}
		log.Info("priority set", zap.Int("nice", cfg.Nice))
	}
	d, err := New(cfg, log)
	if err != nil {
		return err
	}
	// Before Start changes anything: a daemon already serving this socket
	// is another instance, whatever its state_dir.
	if err := api.CheckFree(cfg.Socket); err != nil {
		return err
	}
	if err := d.Start(ctx); err != nil {
		d.Close(false)
		return err
	}
	srv, err := api.Listen(cfg.Socket, d, log)
	if err != nil {
		d.Close(false)
		return err
	}
	if cfg.SocketGroup != "" {
		if err := srv.AllowGroup(cfg.SocketGroup); err != nil {
			srv.Close(context.Background())
			d.Close(false)
			return err
		}
	}
	log.Info("control API listening", zap.String("socket", srv.Path()), zap.Int("pid", os.Getpid()))
	var hup <-chan os.Signal
	if len(reload) > 0 && reload[0] != nil {
		hup = reload[0].Signals
	}
	for wait := true; wait; {
		select {
		case <-ctx.Done():
			wait = false
		case <-hup:
			d.ReloadNow(reload[0])
		}
	}
	log.Info("stopping", zap.String("cause", context.Cause(ctx).Error()))
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	serr := srv.Close(sctx)
	d.mu.Lock()
	remove := d.cfg.RemovePodsOnExit // as the last reload left it
	d.mu.Unlock()
	return errors.Join(serr, d.Close(remove))
}
