package tap

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/internal/crashpoint"
	"github.com/tapswitch/tapswitch/netns"
)

// MaxQueues is the kernel's limit on queues per TAP (MAX_TAP_QUEUES).
const MaxQueues = 256

// DefaultQueues is one queue per CPU, up to 4: more queues than reader
// goroutines that can run at once only add wake-ups.
func DefaultQueues() int { return min(runtime.NumCPU(), 4) }

// PodConfig describes a pod's TAP. CreatePod uses all of it; Attach and DeletePod
// use Name, NetNS, IfName and Queues.
type PodConfig struct {
	Name    string           // the pod, for errors
	NetNS   string           // a name under netns.Dir, created if missing, or the path of an existing namespace
	IfName  string           // the TAP's name inside the pod; default "eth0"
	MAC     net.HardwareAddr // default: the kernel's random address
	MTU     int              // default: the kernel's 1500
	Addr    netip.Prefix     // the pod's address and subnet, e.g. 10.244.0.5/24
	Gateway netip.Addr       // default route via this address; none if zero
	// Addr6 is a dual-stack pod's IPv6 address and subnet, added without
	// duplicate address detection (usable at once); Gateway6 its IPv6
	// default route's next hop. Both optional.
	Addr6      netip.Prefix
	Gateway6   netip.Addr
	Queues     int  // default DefaultQueues()
	TxQueueLen int  // default: the kernel's 1000
	Polled     bool // the queues are for a Poller, not ReadBatch
}

// GatewayConfig describes the TAP in the host namespace that holds the pod
// subnet's gateway address, as cbr0 did.
type GatewayConfig struct {
	Name       string           // the link name in the host namespace, e.g. "tsw0"
	Addr       netip.Prefix     // e.g. 10.244.0.1/24
	Addr6      netip.Prefix     // optional IPv6 address, added without DAD, e.g. fd00:10:244::1/64
	MAC        net.HardwareAddr // default: the kernel's random address
	MTU        int              // default: the kernel's 1500
	Queues     int              // default DefaultQueues()
	TxQueueLen int              // default: the kernel's 1000
	Polled     bool             // the queues are for a Poller, not ReadBatch
}

// Device is an open TAP: its queues, and where it lives.
type Device struct {
	name         string
	index        int      // ifindex inside its namespace
	ns           netns.NS // by path; no path for the host namespace
	nsID         netns.ID // identifies the namespace behind the path
	mac          net.HardwareAddr
	offloads     int
	createdNetNS bool
	queues       []*Queue
}

// Name returns the interface name inside the device's namespace.
func (d *Device) Name() string { return d.name }

// NetNS returns the path of the device's network namespace, or "" for the host.
func (d *Device) NetNS() string { return d.ns.Path() }

// MAC returns the device's hardware address as the pod sees it.
func (d *Device) MAC() net.HardwareAddr { return d.mac }

// Queues returns the device's open queues.
func (d *Device) Queues() []*Queue { return d.queues }

// CreatedNetNS reports whether CreatePod created the pod's namespace, which a
// caller deleting the pod may then want to remove too.
func (d *Device) CreatedNetNS() bool { return d.createdNetNS }

// Offloads names the offloads the kernel accepted, e.g. "csum|tso4|tso6|tso_ecn".
func (d *Device) Offloads() string { return offloadNames(d.offloads) }

// Close closes every queue. A persistent device stays, with its addresses, for a
// later Attach; the pod merely sees no carrier meanwhile.
func (d *Device) Close() error {
	var errs []error
	for _, q := range d.queues {
		errs = append(errs, q.Close())
	}
	return errors.Join(errs...)
}

// SetTxQueueLen sets the device's transmit queue length. A TAP drops rather than
// pushes back when its reader falls behind, so a longer queue trades latency for
// fewer drops.
func (d *Device) SetTxQueueLen(n int) error {
	return d.inLink(func(link netlink.Link) error {
		if err := netlink.LinkSetTxQLen(link, n); err != nil {
			return fmt.Errorf("%s: txqueuelen %d: %w", d.where(), n, err)
		}
		return nil
	})
}

// Dropped is the kernel's count of frames the device dropped on their way
// to its queues' reader (the device's tx_dropped, as its own side sees
// it): a queue was full because the reader fell behind or paused it, a
// LockSource filter refused them, or no queue was attached. A TAP frees a
// frame from the sender's socket as it queues it, so the sender never
// waits for the reader; this counter is where what the switch never read
// shows up. It fails as Check does when the device is gone.
func (d *Device) Dropped() (uint64, error) {
	var n uint64
	err := d.inLink(func(link netlink.Link) error {
		if s := link.Attrs().Statistics; s != nil {
			n = s.TxDropped
		}
		return nil
	})
	return n, err
}

// Check reports whether the device and its namespace still exist: nil if so, an
// error wrapping ErrGone if not, another error if it cannot tell. Queues opened by
// Attach need it: they were opened inside the pod's namespace, and the kernel keeps
// that namespace, and the device in it, alive for as long as they are open, so
// removing the namespace alone never makes their ReadBatch fail. Call it now and
// then (every few seconds) and close the device when it reports ErrGone.
func (d *Device) Check() error {
	return d.inLink(func(netlink.Link) error { return nil })
}

// inLink looks the device up by index in its namespace and runs fn there with
// its link. The lookup fails with an error wrapping ErrGone if the namespace
// path is gone or now holds another namespace (made again under the same
// name, with another eth0 likely at the same index: not this device), or if
// the namespace no longer has the device; with another error if it cannot
// tell. fn's error is returned as is.
func (d *Device) inLink(fn func(netlink.Link) error) error {
	var lookupErr, fnErr error
	in := func() error {
		link, err := netlink.LinkByIndex(d.index)
		if err != nil {
			lookupErr = err
			return nil
		}
		fnErr = fn(link)
		return nil
	}
	var err error
	if d.ns.Path() == "" {
		err = in()
	} else {
		// The namespace is checked and entered through one open file, so
		// that the path cannot change between the two.
		var h *netns.Handle
		h, err = d.ns.Open()
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, netns.ErrNotNetNS) {
			return fmt.Errorf("%s: %w", d.where(), ErrGone)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", d.where(), err)
		}
		defer h.Close()
		if h.ID() != d.nsID {
			return fmt.Errorf("%s: %w", d.where(), ErrGone)
		}
		err = h.Run(in)
	}
	var notFound netlink.LinkNotFoundError
	switch {
	case err != nil: // entering the namespace; the error names its path
		return fmt.Errorf("tap %q: %w", d.name, err)
	case errors.As(lookupErr, &notFound):
		return fmt.Errorf("%s: %w", d.where(), ErrGone)
	case lookupErr != nil:
		return fmt.Errorf("%s: %w", d.where(), lookupErr)
	}
	return fnErr
}

// where names the device, and its namespace if not the host's, for errors.
func (d *Device) where() string {
	if d.ns.Path() == "" {
		return fmt.Sprintf("tap %q", d.name)
	}
	return fmt.Sprintf("tap %q: netns %q", d.name, d.ns.Path())
}

// CreatePod creates the pod's TAP and leaves it configured as the pod's IfName
// inside its namespace: address, MAC, MTU, link up, loopback up, default route.
// On failure it removes what it created, the namespace included if it made it.
func CreatePod(cfg PodConfig) (_ *Device, err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("pod %q: %w", cfg.Name, err)
		}
	}()
	if err := cfg.check(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	ns, err := netns.Parse(cfg.NetNS)
	if err != nil {
		return nil, err
	}

	created := false
	if ns.Name() != "" {
		if created, err = ns.Create(); err != nil {
			return nil, err
		}
		if created {
			defer func() {
				if err != nil {
					err = errors.Join(err, ns.Delete())
				}
			}()
			crashpoint.Hit("add-netns")
		}
	}
	target, err := ns.Open()
	if err != nil {
		return nil, err
	}
	defer target.Close()
	path := ns.Path()

	// A temporary name, because the pod's name (eth0) is taken in the host.
	tmp := newTempName()
	fds, offloads, err := openTAP(tmp, cfg.Queues, true)
	if err != nil {
		return nil, err
	}
	dev, err := newDevice(fds, tmp, path, offloads, fmt.Sprintf("pod %q: tap %q", cfg.Name, cfg.IfName), cfg.Polled)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			// Not persistent yet: with its last fd the kernel deletes the TAP,
			// in whichever namespace it has got to.
			err = errors.Join(err, dev.Close())
		}
	}()

	link, err := netlink.LinkByName(tmp)
	if err != nil {
		return nil, fmt.Errorf("tap %q: %w", tmp, err)
	}
	if err := netlink.LinkSetNsFd(link, target.Fd()); err != nil {
		return nil, fmt.Errorf("tap %q: move to netns %q: %w", tmp, cfg.NetNS, err)
	}
	crashpoint.Hit("add-moved")
	err = ns.Run(func() error {
		link, err := netlink.LinkByName(tmp)
		if err != nil {
			return fmt.Errorf("tap %q: %w", tmp, err)
		}
		if err := netlink.LinkSetName(link, cfg.IfName); err != nil {
			return fmt.Errorf("tap %q: rename to %q: %w", tmp, cfg.IfName, err)
		}
		link.Attrs().Name = cfg.IfName
		dev.index = link.Attrs().Index
		if dev.mac, err = configure(link, cfg.MAC, cfg.MTU, cfg.TxQueueLen, cfg.Addr, cfg.Addr6); err != nil {
			return err
		}
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		if err != nil {
			return fmt.Errorf("loopback: %w", err)
		}
		for _, gw := range []netip.Addr{cfg.Gateway, cfg.Gateway6} {
			if !gw.IsValid() {
				continue
			}
			var dst *net.IPNet // IPv4: the kernel's default
			if gw.Is6() {
				dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
			}
			route := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst, Gw: gw.AsSlice()}
			if err := netlink.RouteAdd(route); err != nil {
				return fmt.Errorf("tap %q: default route via %s: %w", cfg.IfName, gw, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	dev.name = cfg.IfName
	dev.nsID = target.ID()
	if err := dev.persist(); err != nil {
		return nil, err
	}
	dev.createdNetNS = created
	return dev, nil
}

// Attach re-opens the persistent TAP that CreatePod left in the pod's namespace,
// without touching its configuration.
func Attach(cfg PodConfig) (*Device, error) {
	if cfg.IfName == "" {
		cfg.IfName = "eth0"
	}
	if cfg.Queues == 0 {
		cfg.Queues = DefaultQueues()
	}
	ns, err := netns.Parse(cfg.NetNS)
	if err != nil {
		return nil, fmt.Errorf("pod %q: %w", cfg.Name, err)
	}
	id, err := ns.ID()
	if err != nil {
		return nil, fmt.Errorf("pod %q: %w", cfg.Name, err)
	}
	var dev *Device
	// Inside the namespace: TUNSETIFF from the host would create a new device.
	err = ns.Run(func() (err error) {
		dev, err = attach(cfg.IfName, cfg.Queues, fmt.Sprintf("pod %q: tap %q", cfg.Name, cfg.IfName), cfg.Polled)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pod %q: %w", cfg.Name, err)
	}
	dev.ns = netns.FromPath(ns.Path())
	dev.nsID = id
	return dev, nil
}

// DeletePod deletes the pod's TAP and, with removeNetNS, its named namespace.
// What is already gone is not an error, so that deletion can be retried.
func DeletePod(cfg PodConfig, removeNetNS bool) error {
	if cfg.IfName == "" {
		cfg.IfName = "eth0"
	}
	ns, err := netns.Parse(cfg.NetNS)
	if err != nil {
		return fmt.Errorf("pod %q: %w", cfg.Name, err)
	}
	if removeNetNS && ns.Name() == "" {
		return fmt.Errorf("pod %q: netns %q: not a named namespace, will not remove it", cfg.Name, cfg.NetNS)
	}
	if _, err := os.Stat(ns.Path()); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	err = ns.Run(func() error { return deleteTAP(cfg.IfName) })
	if err == nil && removeNetNS {
		crashpoint.Hit("del-tap")
		err = ns.Delete()
	}
	if err != nil {
		return fmt.Errorf("pod %q: %w", cfg.Name, err)
	}
	return nil
}

// CreateGateway creates and configures the gateway TAP in the host namespace. It
// refuses an existing link of that name and changes nothing else on the host,
// beyond the subnet route the kernel adds with the address.
func CreateGateway(cfg GatewayConfig) (_ *Device, err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("gateway: %w", err)
		}
	}()
	if err := checkIfName(cfg.Name); err != nil {
		return nil, err
	}
	if !cfg.Addr.IsValid() {
		return nil, fmt.Errorf("tap %q: address %q: invalid prefix", cfg.Name, cfg.Addr)
	}
	if cfg.Queues == 0 {
		cfg.Queues = DefaultQueues()
	}
	if cfg.Queues < 0 || cfg.Queues > MaxQueues {
		return nil, fmt.Errorf("tap %q: %d queues: want 1 to %d", cfg.Name, cfg.Queues, MaxQueues)
	}
	fds, offloads, err := openTAP(cfg.Name, cfg.Queues, true)
	if err != nil {
		return nil, err
	}
	dev, err := newDevice(fds, cfg.Name, "", offloads, fmt.Sprintf("gateway tap %q", cfg.Name), cfg.Polled)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, dev.Close())
		}
	}()
	link, err := netlink.LinkByName(cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("tap %q: %w", cfg.Name, err)
	}
	if cfg.Addr6.IsValid() && !cfg.Addr6.Addr().Is6() {
		return nil, fmt.Errorf("tap %q: address %s: not IPv6", cfg.Name, cfg.Addr6)
	}
	if dev.mac, err = configure(link, cfg.MAC, cfg.MTU, cfg.TxQueueLen, cfg.Addr, cfg.Addr6); err != nil {
		return nil, err
	}
	dev.index = link.Attrs().Index
	if err := dev.persist(); err != nil {
		return nil, err
	}
	return dev, nil
}

// AttachGateway re-opens the persistent gateway TAP name in the host namespace.
func AttachGateway(name string, queues int, polled bool) (*Device, error) {
	if queues == 0 {
		queues = DefaultQueues()
	}
	dev, err := attach(name, queues, fmt.Sprintf("gateway tap %q", name), polled)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return dev, nil
}

// DeleteGateway deletes the gateway TAP name from the host namespace; a missing
// one is not an error.
func DeleteGateway(name string) error {
	if err := deleteTAP(name); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	return nil
}

// configure sets up a freshly created, still down link in the calling thread's
// namespace and returns its MAC. addr6, if valid, is added too.
func configure(link netlink.Link, mac net.HardwareAddr, mtu, txqlen int, addr, addr6 netip.Prefix) (net.HardwareAddr, error) {
	name := link.Attrs().Name
	if mac != nil {
		if err := netlink.LinkSetHardwareAddr(link, mac); err != nil {
			return nil, fmt.Errorf("tap %q: mac %s: %w", name, mac, err)
		}
	}
	if mtu != 0 {
		if err := netlink.LinkSetMTU(link, mtu); err != nil {
			return nil, fmt.Errorf("tap %q: mtu %d: %w", name, mtu, err)
		}
	}
	if txqlen != 0 {
		if err := netlink.LinkSetTxQLen(link, txqlen); err != nil {
			return nil, fmt.Errorf("tap %q: txqueuelen %d: %w", name, txqlen, err)
		}
	}
	if err := netlink.AddrAdd(link, NetlinkAddr(addr)); err != nil {
		return nil, fmt.Errorf("tap %q: address %s: %w", name, addr, err)
	}
	if addr6.IsValid() {
		if err := netlink.AddrAdd(link, NetlinkAddr(addr6)); errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("tap %q: address %s: IPv6 is disabled in the namespace (net.ipv6.conf.%s.disable_ipv6): %w", name, addr6, name, err)
		} else if err != nil {
			return nil, fmt.Errorf("tap %q: address %s: %w", name, addr6, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("tap %q: up: %w", name, err)
	}
	fresh, err := netlink.LinkByIndex(link.Attrs().Index)
	if err != nil {
		return nil, fmt.Errorf("tap %q: %w", name, err)
	}
	return fresh.Attrs().HardwareAddr, nil
}

// NetlinkAddr is p as an interface address. An IPv6 one is flagged nodad:
// the switch's port binding already keeps the address to one pod, and a
// tentative address would refuse traffic (and a default route through it)
// for the second or so that duplicate address detection takes.
func NetlinkAddr(p netip.Prefix) *netlink.Addr {
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

// attach opens queues of the existing TAP name in the calling thread's namespace.
func attach(name string, queues int, label string, polled bool) (*Device, error) {
	if err := checkIfName(name); err != nil {
		return nil, err
	}
	if queues < 0 || queues > MaxQueues {
		return nil, fmt.Errorf("tap %q: %d queues: want 1 to %d", name, queues, MaxQueues)
	}
	// Checked first because TUNSETIFF on a missing name would create a device.
	link, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("tap %q: %w", name, err)
	}
	tt, ok := link.(*netlink.Tuntap)
	if !ok || tt.Mode != netlink.TUNTAP_MODE_TAP || tt.Flags&netlink.TUNTAP_MULTI_QUEUE == 0 {
		return nil, fmt.Errorf("tap %q: is a %s, not a multi-queue TAP", name, link.Type())
	}
	fds, offloads, err := openTAP(name, queues, false)
	if err != nil {
		return nil, err
	}
	dev, err := newDevice(fds, name, "", offloads, label, polled)
	if err != nil {
		return nil, err
	}
	dev.mac = link.Attrs().HardwareAddr
	dev.index = link.Attrs().Index
	return dev, nil
}

// deleteTAP deletes the TAP name in the calling thread's namespace. It refuses
// other kinds of link, which are not ours.
func deleteTAP(name string) error {
	link, err := netlink.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("tap %q: %w", name, err)
	}
	if _, ok := link.(*netlink.Tuntap); !ok {
		return fmt.Errorf("tap %q: is a %s, not a TAP; not deleting it", name, link.Type())
	}
	if err := netlink.LinkDel(link); err != nil {
		return fmt.Errorf("tap %q: delete: %w", name, err)
	}
	return nil
}

// newDevice wraps fds in queues; on failure it closes them all.
func newDevice(fds []int, name, netnsPath string, offloads int, label string, polled bool) (*Device, error) {
	dev := &Device{name: name, ns: netns.FromPath(netnsPath), offloads: offloads}
	for i, fd := range fds {
		q, err := newQueue(fd, fmt.Sprintf("%s queue %d", label, i), polled)
		if err != nil {
			dev.Close()
			for _, fd := range fds[i+1:] {
				unix.Close(fd)
			}
			return nil, err
		}
		dev.queues = append(dev.queues, q)
	}
	return dev, nil
}

// persist is the last step of creation: from here on the device outlives its
// fds, and this process.
func (d *Device) persist() error {
	err := d.queues[0].control(func(fd int) error {
		return unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 1)
	})
	if err != nil {
		return fmt.Errorf("tap %q: TUNSETPERSIST: %w", d.name, err)
	}
	return nil
}

func (cfg *PodConfig) check() error {
	if cfg.Name == "" {
		return errors.New("empty pod name")
	}
	if _, err := netns.Parse(cfg.NetNS); err != nil {
		return err
	}
	if cfg.IfName != "" {
		if err := checkIfName(cfg.IfName); err != nil {
			return err
		}
	}
	if !cfg.Addr.IsValid() {
		return fmt.Errorf("address %q: invalid prefix", cfg.Addr)
	}
	if cfg.Gateway.IsValid() && cfg.Gateway.Is4() != cfg.Addr.Addr().Is4() {
		// A gateway outside the subnet is left to the kernel, which refuses it
		// unless some other route makes it reachable.
		return fmt.Errorf("gateway %s: not the family of address %s", cfg.Gateway, cfg.Addr)
	}
	if cfg.Addr6.IsValid() && (!cfg.Addr6.Addr().Is6() || cfg.Addr6.Addr().Is4In6()) {
		return fmt.Errorf("address %s: not IPv6", cfg.Addr6)
	}
	if cfg.Gateway6.IsValid() && (!cfg.Addr6.IsValid() || !cfg.Gateway6.Is6()) {
		return fmt.Errorf("gateway %s: no IPv6 address of that family", cfg.Gateway6)
	}
	if cfg.Queues < 0 || cfg.Queues > MaxQueues {
		return fmt.Errorf("%d queues: want 1 to %d", cfg.Queues, MaxQueues)
	}
	return nil
}

func (cfg *PodConfig) setDefaults() {
	if cfg.IfName == "" {
		cfg.IfName = "eth0"
	}
	if cfg.Queues == 0 {
		cfg.Queues = DefaultQueues()
	}
}

func checkIfName(name string) error {
	if err := netns.CheckIfName(name); err != nil {
		return fmt.Errorf("tap %q: invalid interface name: %w", name, err)
	}
	return nil
}

// newTempName names a pod TAP in the host namespace between creation and its
// move into the pod; tests replace it to find leftovers.
var newTempName = func() string {
	return fmt.Sprintf("tsw%08x", rand.Uint32())
}
