// Package demo is `tapswitch demo`: it starts a switch in-process, makes
// three pods, sends pings and a TCP transfer between them and to the
// gateway, prints the tables and counters with an account of what flooded
// and what was learned, and removes everything it made, on success, failure
// or Ctrl-C alike.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/cmd/internal/config"
	"github.com/tapswitch/tapswitch/cmd/internal/daemon"
	"github.com/tapswitch/tapswitch/cmd/internal/render"
	"github.com/tapswitch/tapswitch/fdb"
	"github.com/tapswitch/tapswitch/internal/podnet"
	"github.com/tapswitch/tapswitch/netns"
	vswitch "github.com/tapswitch/tapswitch/switch"
	"github.com/tapswitch/tapswitch/tap"
)

// Options shape a demo run; zero values take the defaults.
type Options struct {
	Out    io.Writer
	Log    *zap.Logger // the in-process daemon's log
	Subnet string      // default 10.244.0.0/24, what cbr0 served
	Prefix string      // names of namespaces and the gateway TAP; default "tsdemo"
	Size   int64       // bytes of the TCP transfer; default 256 MiB
	Queues int         // TAP queues per pod; default 2
}

// DefaultSubnet is the demo's pod subnet unless told otherwise.
const DefaultSubnet = "10.244.0.0/24"

func (o *Options) defaults() {
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Subnet == "" {
		o.Subnet = DefaultSubnet
	}
	if o.Prefix == "" {
		o.Prefix = "tsdemo"
	}
	if o.Size <= 0 {
		o.Size = 256 << 20
	}
	if o.Queues <= 0 {
		o.Queues = 2
	}
}

type run struct {
	o      Options
	out    io.Writer
	d      *daemon.Daemon
	tr     *tracer
	subnet netip.Prefix
	gw     netip.Addr
	gwIf   string
	pods   []api.Pod
	dir    string
}

// Run runs the demo. It returns an error if any step failed, after cleaning
// up.
func Run(ctx context.Context, o Options) (err error) {
	o.defaults()
	if os.Geteuid() != 0 {
		return errors.New("demo: needs root (it creates network namespaces and TAP devices)")
	}
	r := &run{o: o, out: o.Out, tr: &tracer{}, gwIf: o.Prefix + "0"}
	if len(r.gwIf) > 15 {
		return fmt.Errorf("demo: prefix %q: too long for an interface name", o.Prefix)
	}
	if r.subnet, err = netip.ParsePrefix(o.Subnet); err != nil || !r.subnet.Addr().Is4() || r.subnet.Bits() > 29 {
		return fmt.Errorf("demo: subnet %q: want an IPv4 CIDR of /29 or larger", o.Subnet)
	}
	r.subnet = r.subnet.Masked()
	r.gw = r.subnet.Addr().Next()

	// A demo killed with -9 leaves its namespaces and gateway behind; they
	// carry the demo's prefix, so they are ours to remove.
	if n := sweep(o.Prefix, r.gwIf); n > 0 {
		r.say("removed %d leftovers of an earlier demo", n)
	}
	if err := checkFree(r.subnet, r.gwIf); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if r.dir, err = os.MkdirTemp("", "tapswitch-demo-"); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer func() {
		cerr := r.cleanup()
		if cerr != nil {
			err = errors.Join(err, fmt.Errorf("demo: cleanup: %w", cerr))
		}
	}()
	if err := r.steps(ctx); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("demo: interrupted: %w", context.Cause(ctx))
		}
		return fmt.Errorf("demo: %w", err)
	}
	return nil
}

func (r *run) say(format string, a ...any) { fmt.Fprintf(r.out, format+"\n", a...) }

func (r *run) step(format string, a ...any) { fmt.Fprintf(r.out, "\n==> "+format+"\n", a...) }

func (r *run) steps(ctx context.Context) error {
	cfg := config.Default()
	cfg.Switch.Name = "demo"
	cfg.Subnet = r.subnet.String()
	cfg.Gateway = config.Gateway{Address: r.gw.String(), Interface: r.gwIf}
	cfg.NetnsPrefix = r.o.Prefix + "-"
	cfg.StateDir = r.dir
	cfg.Socket = r.dir + "/unused.sock"
	cfg.Queues = r.o.Queues
	cfg.NAT.ServiceMasquerade = false // no Services here: leave the host's nftables alone
	d, err := daemon.New(cfg, r.o.Log, daemon.WithTracer(r.tr))
	if err != nil {
		return err
	}
	r.step("starting switch %q in this process: pod subnet %s, gateway TAP %s holds %s", cfg.Switch.Name, r.subnet, r.gwIf, r.gw)
	if err := d.Start(ctx); err != nil {
		d.Close(true)
		return err
	}
	r.d = d

	r.step("creating three pods (a network namespace each, with a TAP as eth0 and a default route via %s)", r.gw)
	ip := r.gw
	for i := 1; i <= 3; i++ {
		ip = ip.Next()
		name := fmt.Sprintf("pod%d", i)
		// The namespace first, with IPv6 off, so that the pods are quiet
		// and the first frame each sends is the ARP the story is about.
		// (The demo's sweep removes these namespaces; the daemon does not,
		// since it did not make them.)
		if _, err := netns.CreateNamed(cfg.NetnsPrefix + name); err != nil {
			return err
		}
		if err := podnet.DisableIPv6(cfg.NetnsPrefix + name); err != nil {
			return err
		}
		p, err := d.AddPod(ctx, api.PodSpec{Name: name, IP: netip.PrefixFrom(ip, r.subnet.Bits()).String()})
		if err != nil {
			return err
		}
		r.pods = append(r.pods, p)
		r.say("  %s: netns %s, eth0 %s, mac %s, switch port %d", p.Name, p.Netns, p.IP, p.MAC, p.Port)
	}
	nm := r.names()

	type ping struct {
		from, to string
		ns       string
		dst      netip.Addr
	}
	addr := func(p api.Pod) netip.Addr { return netip.MustParsePrefix(p.IP).Addr() }
	pings := []ping{
		{"pod1", "pod2", r.pods[0].Netns, addr(r.pods[1])},
		{"pod2", "pod3", r.pods[1].Netns, addr(r.pods[2])},
		{"pod1", "gateway", r.pods[0].Netns, r.gw},
	}
	var story []string
	for _, p := range pings {
		r.step("ping %s -> %s (%s)", p.from, p.to, p.dst)
		r.tr.take()
		r.tr.on.Store(true)
		res, err := podnet.Ping(ctx, p.ns, p.dst, podnet.PingOptions{Count: 3, Interval: 100 * time.Millisecond, Timeout: 2 * time.Second})
		evs := r.tr.take()
		if err != nil {
			return err
		}
		r.say("  %s", res)
		lines := describe(evs, nm)
		if res.Received() == 0 {
			r.say("  the switch saw:")
			for _, l := range lines {
				r.say("    %s", l)
			}
			render.Ports(r.out, d.Ports())
			return fmt.Errorf("ping %s -> %s (%s): no reply", p.from, p.to, p.dst)
		}
		story = append(story, fmt.Sprintf("ping %s -> %s:", p.from, p.to))
		story = append(story, lines...)
	}

	r.step("TCP transfer pod1 -> pod2: %d MiB over one connection, SHA-256 at both ends", r.o.Size>>20)
	before := portsByName(d.Switch().Ports())
	res, err := podnet.Transfer(ctx, r.pods[0].Netns, r.pods[1].Netns, addr(r.pods[1]), r.o.Size)
	if err != nil {
		return err
	}
	after := portsByName(d.Switch().Ports())
	r.say("  %s", res)
	r.say("  rate: %s", podnet.FormatRate(res.Rate()))

	r.step("forwarding table (like `bridge fdb show`)")
	render.FDB(r.out, cfg.Switch.Name, d.FDB())
	r.step("neighbour table (snooped from ARP)")
	render.Neighbours(r.out, d.Neighbours())
	r.step("port counters")
	render.Ports(r.out, d.Ports())

	r.step("what happened")
	r.say("Each line is one frame (or a run of like frames) as the switch saw it: in port -> destination MAC.")
	for _, l := range story {
		if strings.HasPrefix(l, "ping ") {
			r.say("\n%s", l)
		} else {
			r.say("  %s", l)
		}
	}
	r.explain(before, after)
	return nil
}

func (r *run) names() names {
	n := names{ports: make(map[fdb.PortID]string), macs: make(map[fdb.MAC]string)}
	for _, p := range r.d.Ports() {
		n.ports[p.ID] = p.Name
		if m, err := fdb.ParseMAC(p.MAC); err == nil {
			n.macs[m] = p.Name
		}
	}
	return n
}

func portsByName(ps []vswitch.PortInfo) map[string]vswitch.Counters {
	m := make(map[string]vswitch.Counters, len(ps))
	for _, p := range ps {
		m[p.Name] = p.Counters
	}
	return m
}

// explain sums up the transfer from the port counters.
func (r *run) explain(before, after map[string]vswitch.Counters) {
	d := func(port string) (rx, tx, flooded uint64) {
		a, b := after[port], before[port]
		return a.RxFrames - b.RxFrames, a.TxFrames - b.TxFrames, a.Flooded - b.Flooded
	}
	rx1, _, fl1 := d("pod1")
	_, tx2, _ := d("pod2")
	_, tx3, _ := d("pod3")
	_, txg, _ := d(r.gwIf)
	r.say("")
	r.say("In short: a pod that does not know a neighbour's MAC broadcasts an ARP request, and the")
	r.say("switch floods it to every other port of the VLAN, learning the sender's MAC on the way in.")
	r.say("The answer is unicast to a MAC the switch has just learned, so it leaves on one port only,")
	r.say("and the switch learns the answering MAC too. From then on frames between the two go out")
	r.say("exactly one port. The gateway's MAC is the switch's own (a permanent FDB entry), so frames")
	r.say("to it never flood; the host answers through the gateway TAP %s.", r.gwIf)
	r.say("During the TCP transfer pod1 sent %d frames into the switch (%d flooded); pod2's port", rx1, fl1)
	r.say("sent %d frames out, pod3's %d and the gateway's %d. Most frames are 64 KiB TSO super-frames", tx2, tx3, txg)
	r.say("carried whole in the virtio-net header, not 1514-byte packets. Other flooded frames are")
	r.say("multicast the host sends out its gateway TAP (IPv6 neighbour discovery).")
}

// cleanup removes everything the demo made.
func (r *run) cleanup() error {
	r.step("cleaning up: pods, their namespaces, the gateway TAP")
	var errs []error
	if r.d != nil {
		errs = append(errs, r.d.Close(true))
	}
	sweep(r.o.Prefix, r.gwIf)
	if r.dir != "" {
		errs = append(errs, os.RemoveAll(r.dir))
	}
	if left := leftovers(r.o.Prefix, r.gwIf); len(left) > 0 {
		errs = append(errs, fmt.Errorf("still there: %s", strings.Join(left, ", ")))
	}
	err := errors.Join(errs...)
	if err == nil {
		r.say("  done: nothing of the demo is left")
	}
	return err
}

// leftovers lists namespaces and links carrying the demo's names.
func leftovers(prefix, gwIf string) []string {
	var out []string
	ents, _ := os.ReadDir(netns.Dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix+"-") {
			out = append(out, "netns "+e.Name())
		}
	}
	if _, err := netlink.LinkByName(gwIf); err == nil {
		out = append(out, "link "+gwIf)
	}
	return out
}

// sweep deletes leftovers and says how many there were.
func sweep(prefix, gwIf string) int {
	n := 0
	ents, _ := os.ReadDir(netns.Dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix+"-") {
			if tap.DeletePod(tap.PodConfig{Name: e.Name(), NetNS: e.Name()}, true) == nil {
				n++
			}
		}
	}
	if _, err := netlink.LinkByName(gwIf); err == nil {
		if tap.DeleteGateway(gwIf) == nil {
			n++
		}
	}
	return n
}

// checkFree refuses a subnet that the host already uses, so the demo never
// steals a real node's pod routes.
func checkFree(subnet netip.Prefix, gwIf string) error {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return err
	}
	for _, a := range addrs {
		p, ok := netip.AddrFromSlice(a.IP.To4())
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		if netip.PrefixFrom(p, ones).Masked().Overlaps(subnet) {
			return fmt.Errorf("subnet %s: the host already has %s/%d on %s; pick another with --subnet", subnet, p, ones, a.Label)
		}
	}
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return err
	}
	for _, rt := range routes {
		if rt.Dst == nil {
			continue
		}
		p, ok := netip.AddrFromSlice(rt.Dst.IP.To4())
		if !ok {
			continue
		}
		ones, _ := rt.Dst.Mask.Size()
		if ones > 0 && netip.PrefixFrom(p, ones).Masked().Overlaps(subnet) {
			return fmt.Errorf("subnet %s: the host already routes %s; pick another with --subnet", subnet, rt.Dst)
		}
	}
	return nil
}
