package simreal

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
	"github.com/tapswitch/tapswitch/cmd/internal/config"
	"github.com/tapswitch/tapswitch/cmd/internal/daemon"
	"github.com/tapswitch/tapswitch/fdb"
	"github.com/tapswitch/tapswitch/internal/podnet"
	"github.com/tapswitch/tapswitch/internal/testenv"
	"github.com/tapswitch/tapswitch/netns"
)

// node is the scenario's switch realised: the daemon in this process,
// running in a namespace of its own that plays the node's host namespace
// (its gateway TAP lives there, never in the real host's), and one pod
// namespace per host.
type node struct {
	p      *plan
	prefix string // of every pod namespace made ("sr1a2b3-")
	nodeNS string
	gwIf   string
	dir    string
	d      *daemon.Daemon
	macs   map[string]fdb.MAC // host -> its interface's MAC
}

// nsOf is the namespace of host h.
func (n *node) nsOf(h string) string { return n.prefix + h }

// newNode builds the node. On failure it removes what it made.
func newNode(ctx context.Context, p *plan, id string, log *zap.Logger) (n *node, err error) {
	if id == "" {
		id = testenv.NewPrefix("sr", 5)
	}
	if len(id) > 8 {
		return nil, fmt.Errorf("prefix %q: longer than 8 characters (the gateway's name is PREFIX+\"gw\", at most 15)", id)
	}
	// Pods are PREFIX-HOST; the node's namespace has no dash, so that no
	// host's name can take it.
	n = &node{p: p, prefix: id + "-", nodeNS: id + "node", gwIf: id + "gw", macs: map[string]fdb.MAC{}}
	defer func() {
		if err != nil {
			if cerr := n.close(); cerr != nil {
				err = errors.Join(err, cerr)
			}
			n = nil
		}
	}()
	if n.dir, err = os.MkdirTemp("", "tssim"); err != nil {
		return n, err
	}
	if err = testenv.QuietNamespace(n.nodeNS); err != nil {
		return n, err
	}
	cfg, err := n.config()
	if err != nil {
		return n, err
	}
	if n.d, err = daemon.New(cfg, log); err != nil {
		return n, fmt.Errorf("daemon: %w", err)
	}
	if err = n.inNode(func() error { return n.d.Start(ctx) }); err != nil {
		return n, fmt.Errorf("daemon: %w", err)
	}
	// The gateway TAP would send IPv6 neighbour discovery of its own: a
	// port the scenario does not have should add nothing to the counters.
	n.inNode(func() error {
		return os.WriteFile("/proc/sys/net/ipv6/conf/"+n.gwIf+"/disable_ipv6", []byte("1\n"), 0o644)
	})
	for i := range p.sc.Hosts {
		if err = n.addHost(ctx, &p.sc.Hosts[i]); err != nil {
			return n, err
		}
	}
	for i := range p.sc.Hosts {
		if err = n.staticARP(&p.sc.Hosts[i]); err != nil {
			return n, err
		}
	}
	return n, nil
}

func (n *node) inNode(fn func() error) error { return netns.FromPath(netns.PathOf(n.nodeNS)).Run(fn) }

// config is the daemon's configuration for the scenario's switch.
func (n *node) config() (config.Config, error) {
	p, sw := n.p, n.p.sw
	cfg := config.Isolated(sw.Name, n.dir, n.prefix, p.subnet.String(), p.gw.String(), n.gwIf)
	cfg.Metrics.Listen = ""
	cfg.FDB.Ageing = sw.Ageing
	cfg.FDB.Limit = sw.TableLimit
	cfg.FDB.PortLimit = sw.PortLimit
	cfg.FDB.Policy = sw.Policy.String()
	cfg.ARP.Suppress = sw.Suppress
	cfg.ARP.Guard = sw.Guard
	cfg.ARP.Ageing = sw.ARPAgeing
	// Node-wide settings: Check made sure every port asks for the same.
	if len(p.sc.Hosts) > 0 {
		if ps := p.ports[p.portOf[p.sc.Hosts[0].Name]]; ps != nil {
			cfg.Switch.StormPPS = ps.Storm
			cfg.Switch.LockPodMAC = ps.LockMAC
			cfg.RxPPS = ps.RxPPS
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("the daemon's configuration for switch %s: %w", sw.Name, err)
	}
	return cfg, nil
}

// addHost makes host h a pod: a quiet namespace (IPv6 off, so it sends
// nothing unasked), the daemon's TAP with its address, MAC and VLAN, and
// its default route.
func (n *node) addHost(ctx context.Context, h *simHost) error {
	ns := n.nsOf(h.Name)
	if _, err := netns.CreateNamed(ns); err != nil {
		return err
	}
	if err := podnet.DisableIPv6(ns); err != nil {
		return err
	}
	ifc := h.Interfaces[0]
	spec := api.PodSpec{Name: h.Name, IP: ifc.IP.String(), NoDefaultRoute: true}
	mac := ifc.MAC
	if mac == (fdb.MAC{}) {
		// The simulator's default, kubenet's: 0a:58 and the address.
		a := ifc.IP.Addr().As4()
		mac = fdb.MAC{0x0a, 0x58, a[0], a[1], a[2], a[3]}
	}
	n.macs[h.Name] = mac
	spec.MAC = mac.String()
	if ps := n.p.ports[n.p.portOf[h.Name]]; ps != nil && ps.VLAN > 1 {
		spec.VLAN = ps.VLAN
	}
	if err := n.inNode(func() error { _, err := n.d.AddPod(ctx, spec); return err }); err != nil {
		return fmt.Errorf("host %s: %w", h.Name, err)
	}
	return netns.FromPath(netns.PathOf(ns)).Run(func() error {

		secs := int(h.ARPTimeout / time.Second)
		for name, v := range map[string]string{
			"base_reachable_time_ms": fmt.Sprint(h.ARPTimeout.Milliseconds()),
			"delay_first_probe_time": fmt.Sprint(secs),
		} {
			if err := os.WriteFile("/proc/sys/net/ipv4/neigh/eth0/"+name, []byte(v+"\n"), 0o644); err != nil {
				return fmt.Errorf("host %s: %w", h.Name, err)
			}
		}
		if h.Forward {
			if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644); err != nil {
				return err
			}
		}
		if !h.Gateway.IsValid() {
			return nil
		}
		eth, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		gw := h.Gateway.AsSlice()
		if err := netlink.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: gw}); err != nil {
			return fmt.Errorf("host %s: default route via %v: %w", h.Name, h.Gateway, err)
		}
		return nil
	})

}

// staticARP adds h's permanent neighbour entries (static_arp), once every
// host has its MAC.
func (n *node) staticARP(h *simHost) error {
	if len(h.StaticARP) == 0 {
		return nil
	}
	return netns.FromPath(netns.PathOf(n.nsOf(h.Name))).Run(func() error {
		eth, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		for _, e := range h.StaticARP {
			mac, ok := n.macs[strings.SplitN(e.MAC, ":", 2)[0]]
			if !ok {
				if mac, err = fdb.ParseMAC(e.MAC); err != nil {
					return fmt.Errorf("host %s: static_arp %v: %w", h.Name, e.IP, err)
				}
			}
			nb := &netlink.Neigh{LinkIndex: eth.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT, IP: e.IP.AsSlice(), HardwareAddr: mac.HardwareAddr()}
			if err := netlink.NeighSet(nb); err != nil {
				return fmt.Errorf("host %s: static_arp %v: %w", h.Name, e.IP, err)
			}
		}
		return nil
	})

}

// close stops the daemon (removing its pods) and deletes every namespace
// the run made, whatever state it is in; it reports what it could not
// remove.
func (n *node) close() error {
	var errs []error
	if n.d != nil {
		if err := n.inNode(func() error { return n.d.Close(true) }); err != nil {
			errs = append(errs, fmt.Errorf("daemon close: %w", err))
		}
		n.d = nil
	}
	ents, _ := os.ReadDir(netns.Dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), n.prefix) && e.Name() != n.nodeNS {
			if err := netns.DeleteNamed(e.Name()); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// Last: the gateway TAP goes with the node's namespace.
	if _, err := os.Stat(netns.PathOf(n.nodeNS)); err == nil {
		if err := netns.DeleteNamed(n.nodeNS); err != nil {
			errs = append(errs, err)
		}
	}
	if n.dir != "" {
		os.RemoveAll(n.dir)
	}
	return errors.Join(errs...)
}

// addrOf resolves a ping's or flow's target: an IPv4 address or a host.
func (n *node) addrOf(to string) (netip.Addr, error) {
	if h, ok := n.p.hosts[to]; ok {
		return h.Interfaces[0].IP.Addr(), nil
	}
	a, err := netip.ParseAddr(to)
	if err != nil {
		return a, fmt.Errorf("%q: no host of that name and not an address", to)
	}
	return a, nil
}
