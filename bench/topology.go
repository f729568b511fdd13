package bench

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/tapswitch/tapswitch/internal/testenv"
	"github.com/tapswitch/tapswitch/netns"
)

// Pod is one pod of a built topology: a network namespace with eth0.
type Pod struct {
	Name  string     // the pod's name on its system
	NetNS string     // path of the namespace
	IP    netip.Addr // eth0's address
}

// Topology is a set of pods on one switch.
type Topology interface {
	// System names the switch: "bridge", "tapswitch" or "ovs".
	System() string
	Pods() []Pod
	// SwitchPID is the process that forwards frames, for its CPU time; 0 when
	// the switch is the kernel (its softirq time is charged to whatever ran).
	SwitchPID() int
	// Close removes everything the topology made; safe to call twice.
	Close() error
}

// NewPrefix returns a fresh name prefix for a run, e.g. "tb3f2a": short
// enough to leave room in a 15-byte interface name.
func NewPrefix() string { return testenv.NewPrefix("tb", 4) }

// hostAddr is the subnet's address number n, e.g. 10.251.7.n.
func hostAddr(sub netip.Prefix, n int) netip.Addr {
	a := sub.Addr().As4()
	a[3] = byte(n)
	return netip.AddrFrom4(a)
}

// podAddr is pod i's address: .10, .11, ...
func podAddr(sub netip.Prefix, i int) netip.Addr { return hostAddr(sub, 10+i) }

// Sweep removes whatever carries prefix: Open vSwitch bridges, links in the
// host namespace and named network namespaces. It is the last line of every
// cleanup, so that a run that failed half-way leaves nothing behind, and it
// touches nothing else.
func Sweep(prefix string) error {
	if len(prefix) < 4 {
		return fmt.Errorf("sweep: prefix %q too short to be a run's", prefix)
	}
	// The bridges first: ovs-vswitchd deletes their TAPs itself.
	return errors.Join(sweepOVS(prefix), testenv.Sweep(prefix))
}

// StaticNeighbours gives every pod a permanent neighbour entry for every
// other pod's eth0, so that the pods never ARP for each other. The kernel
// keeps one neighbour table for all namespaces and refuses new dynamic
// entries past net.ipv4.neigh.default.gc_thresh3 (1024 by default):
// pods32's all pairs need 992 entries per system, so the second system's
// ARP failed with "neighbor table overflow" and its dials timed out.
// Permanent entries are exempt from that limit, and the host's sysctls are
// not the bench's to raise.
func StaticNeighbours(pods []Pod) error {
	macs := make([]net.HardwareAddr, len(pods))
	for i, p := range pods {
		err := netns.FromPath(p.NetNS).Run(func() error {
			l, err := netlink.LinkByName("eth0")
			if err != nil {
				return err
			}
			macs[i] = l.Attrs().HardwareAddr
			return nil
		})

		if err != nil {
			return fmt.Errorf("pod %s: eth0: %w", p.NetNS, err)
		}
	}
	for i, p := range pods {
		err := netns.FromPath(p.NetNS).Run(func() error {
			l, err := netlink.LinkByName("eth0")
			if err != nil {
				return fmt.Errorf("eth0: %w", err)
			}
			for j, q := range pods {
				if j == i {
					continue
				}
				n := &netlink.Neigh{
					LinkIndex: l.Attrs().Index, Family: netlink.FAMILY_V4,
					State: netlink.NUD_PERMANENT, IP: q.IP.AsSlice(), HardwareAddr: macs[j],
				}
				if err := netlink.NeighSet(n); err != nil {
					return fmt.Errorf("neighbour %s lladdr %s: %w", q.IP, macs[j], err)
				}
			}
			return nil
		})

		if err != nil {
			return fmt.Errorf("pod %s: %w", p.NetNS, err)
		}
	}
	return nil
}
