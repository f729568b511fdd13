package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/tapswitch/tapswitch/internal/testenv"
	"github.com/tapswitch/tapswitch/netns"
)

// OVS is Open vSwitch's userspace datapath over TAPs, the third system: a
// bridge with datapath_type=netdev whose ports are type=tap, each TAP moved
// into its pod's namespace and renamed eth0 there. ovs-vswitchd creates the
// TAPs in the host namespace and keeps their file descriptors, so it still
// reads and writes them after the move; the bridge forwards with its
// default NORMAL (MAC learning) flow. Names: bridge prefix+"obr", ports
// prefix+"op"+i, namespaces prefix+"on"+i.
type OVS struct {
	prefix string
	bridge string
	pid    int
	pods   []Pod
	closed bool
}

// ovsCmdTimeout bounds every ovs-vsctl call, so that a wedged ovs-vswitchd
// fails the bench instead of hanging it; adding 32 ports takes about 1 s.
const ovsCmdTimeout = 30 * time.Second

// OVSAvailable says why Open vSwitch cannot be measured here, or nil: its
// tools must be installed and ovs-vswitchd must answer (`make ovs` does
// both).
func OVSAvailable() error {
	for _, tool := range []string{"ovs-vswitchd", "ovs-vsctl", "ovs-appctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not installed (`make ovs` installs Open vSwitch)", tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ovs-appctl", "-t", "ovs-vswitchd", "version").CombinedOutput(); err != nil {
		return fmt.Errorf("ovs-vswitchd not running (`make ovs` starts it): ovs-appctl: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// vsctl runs ovs-vsctl with args. It does not take the bench's context:
// clean-up must run after a Ctrl-C too.
func vsctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ovsCmdTimeout)
	defer cancel()
	args = append([]string{"--timeout=" + strconv.Itoa(int(ovsCmdTimeout.Seconds()))}, args...)
	out, err := exec.CommandContext(ctx, "ovs-vsctl", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("ovs-vsctl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// ovsRunFile finds name in Open vSwitch's run directory.
func ovsRunFile(name string) (string, error) {
	var errs []error
	for _, dir := range []string{os.Getenv("OVS_RUNDIR"), "/var/run/openvswitch", "/run/openvswitch"} {
		if dir == "" {
			continue
		}
		path := filepath.Join(dir, name)
		if _, err := os.Stat(path); err != nil {
			errs = append(errs, err)
			continue
		}
		return path, nil
	}
	return "", errors.Join(errs...)
}

// vswitchdPID reads ovs-vswitchd's pidfile, for its CPU time.
func vswitchdPID() (int, error) {
	path, err := ovsRunFile("ovs-vswitchd.pid")
	if err != nil {
		return 0, fmt.Errorf("ovs-vswitchd pidfile: %w", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("ovs-vswitchd pidfile: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%s %q: not a pid", path, b)
	}
	return pid, nil
}

// BuildOVS makes n pods behind a new userspace-datapath OVS bridge in
// subnet sub (pods .10 on; no gateway: the cases stay inside the subnet).
// ctx is checked between pods. On failure it removes what it made.
func BuildOVS(ctx context.Context, prefix string, sub netip.Prefix, n int) (_ *OVS, err error) {
	o := &OVS{prefix: prefix, bridge: prefix + "obr"}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("ovs topology: %w", err), o.Close())
		}
	}()
	if o.pid, err = vswitchdPID(); err != nil {
		return nil, err
	}
	// One transaction for the bridge and all its ports: ovs-vsctl waits
	// for ovs-vswitchd to reconfigure, once, after which every TAP exists.
	args := []string{"add-br", o.bridge, "--", "set", "bridge", o.bridge, "datapath_type=netdev"}
	for i := range n {
		port := o.port(i)
		args = append(args, "--", "add-port", o.bridge, port, "--", "set", "interface", port, "type=tap")
	}
	if _, err := vsctl(args...); err != nil {
		return nil, err
	}
	for i := range n {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p, err := o.addPod(i, netip.PrefixFrom(podAddr(sub, i), sub.Bits()))
		if err != nil {
			return nil, err
		}
		o.pods = append(o.pods, p)
	}
	return o, nil
}

func (o *OVS) port(i int) string { return o.prefix + "op" + strconv.Itoa(i) }

// addPod moves port i's TAP into a new namespace as eth0 with addr.
func (o *OVS) addPod(i int, addr netip.Prefix) (Pod, error) {
	ns := o.prefix + "on" + strconv.Itoa(i)
	port := o.port(i)
	if _, err := netns.CreateNamed(ns); err != nil {
		return Pod{}, err
	}
	path := netns.PathOf(ns)
	h, err := netlink.LinkByName(port)
	if err != nil {
		return Pod{}, fmt.Errorf("ovs port %q: %w", port, err)
	}
	fd, err := os.Open(path)
	if err != nil {
		return Pod{}, fmt.Errorf("netns %q: %w", ns, err)
	}
	defer fd.Close()
	if err := netlink.LinkSetNsFd(h, int(fd.Fd())); err != nil {
		return Pod{}, fmt.Errorf("ovs port %q: move to netns %q: %w", port, ns, err)
	}
	// No default route: the OVS topology has no gateway; the pods talk
	// within their subnet.
	err = netns.FromPath(path).Run(func() error { return podEth0(port, "ovs port", addr, netip.Addr{}) })
	if err != nil {
		return Pod{}, fmt.Errorf("pod %s: %w", ns, err)
	}
	return Pod{Name: ns, NetNS: path, IP: addr.Addr()}, nil
}

// System implements Topology.
func (o *OVS) System() string { return "ovs" }

// Pods implements Topology.
func (o *OVS) Pods() []Pod { return o.pods }

// SwitchPID implements Topology: ovs-vswitchd, whose main thread polls
// the TAPs (they are not PMD ports). Its CPU time includes whatever other
// bridges it serves.
func (o *OVS) SwitchPID() int { return o.pid }

// Close deletes the bridge, which takes its TAPs with it wherever they
// are, then the namespaces.
func (o *OVS) Close() error {
	if o.closed {
		return nil
	}
	o.closed = true
	var errs []error
	if _, err := vsctl("--if-exists", "del-br", o.bridge); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, testenv.Sweep(o.prefix+"o"))
	return errors.Join(errs...)
}

// sweepOVS deletes the OVS bridges whose names start with prefix, and
// nothing else. Without an OVS database there is no bridge to delete.
func sweepOVS(prefix string) error {
	db, err := ovsRunFile("db.sock")
	if err != nil {
		return nil
	}
	// A socket file nobody listens on is what a stopped ovsdb-server leaves
	// behind (a machine restored from a snapshot of one that ran `make
	// ovs`, say). No database answers, so no ovs-vswitchd can hold a bridge
	// of ours either: there is nothing to delete. Any other failure (no
	// permission, a server too busy to accept) may hide bridges of ours.
	c, err := net.DialTimeout("unix", db, 5*time.Second)
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sweep %s: open vswitch database %s: %w", prefix, db, err)
	}
	c.Close()
	if _, err := exec.LookPath("ovs-vsctl"); err != nil {
		return nil
	}
	dbOpt := "--db=unix:" + db
	out, err := vsctl(dbOpt, "list-br")
	if err != nil {
		return fmt.Errorf("sweep %s: %w", prefix, err)
	}
	// A bridge left in the database while ovs-vswitchd is down must still
	// go, without waiting for a reconfiguration that will not come.
	opts := []string{dbOpt}
	if OVSAvailable() != nil {
		opts = append(opts, "--no-wait")
	}
	var errs []error
	for _, br := range strings.Fields(out) {
		if strings.HasPrefix(br, prefix) {
			if _, err := vsctl(append(opts, "--if-exists", "del-br", br)...); err != nil {
				errs = append(errs, fmt.Errorf("sweep: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}
