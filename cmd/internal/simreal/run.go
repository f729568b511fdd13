package simreal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap"

	"github.com/tapswitch/tapswitch/fdb"
	"github.com/tapswitch/tapswitch/internal/podnet"
	"github.com/tapswitch/tapswitch/netns"
	"github.com/tapswitch/tapswitch/sim"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

// Options shape a real run.
type Options struct {
	// Pcap is a directory for one pcap file per switch port, captured on
	// the host's side of its TAP (named as the simulator's
	// --pcap-per-port names the switch port's file); empty: none.
	Pcap string
	// Log is the daemon's logger (default: none).
	Log *zap.Logger
	// Trace gets a line per timeline step and timed assertion.
	Trace io.Writer
	// Prefix starts the name of every namespace and link the run makes
	// (at most 8 characters); default "sr" and five random hex digits.
	Prefix string
}

// Output is what a real run produced: a result in the simulator's shape
// and the switch's tables at the end.
type Output struct {
	Result     *sim.Result
	FDB        []sim.FDBRow
	Neighbours []sim.NeighbourRow
	// HostMACs are the MACs of the scenario's hosts, as FDBRow writes them.
	HostMACs []string
	// Metrics is the metrics JSON (sim.Metrics): the switch sampled every
	// run.tick of wall-clock time.
	Metrics *sim.Metrics
}

// runner is one real run in progress.
type runner struct {
	p      *plan
	n      *node
	o      Options
	t0     time.Time
	obs    map[string]*observer // by host
	pings  map[string]*pinger
	flows  map[string]*flower
	order  []*pinger
	arps   map[string]*arpinger
	aorder []*arpinger
	gone   map[string]vswitch.PortInfo // removed ports, as they were
	forder []*flower
	mu     sync.Mutex
	errs   []error
	res    []sim.AssertionResult
	bases  [][2]float64
	samp   *sampler
}

// Run builds sc's node on the real dataplane, runs its timeline in wall
// time and judges its assertions. It needs root. Whatever happens, and on
// ctx's cancellation too, it removes every namespace, TAP and daemon it
// made before it returns. A scenario it cannot realise is refused with a
// *sim.Error naming the key and line.
func Run(ctx context.Context, sc *sim.Scenario, o Options) (out *Output, err error) {
	p, err := newPlan(sc)
	if err != nil {
		return nil, err
	}
	if err := needRoot(); err != nil {
		return nil, err
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Pcap != "" {
		if err := os.MkdirAll(o.Pcap, 0o755); err != nil {
			return nil, fmt.Errorf("pcap: %w", err)
		}
	}
	n, err := newNode(ctx, p, o.Prefix, o.Log)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := n.close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cleanup: %w", cerr))
		}
	}()
	r := &runner{p: p, n: n, o: o, obs: map[string]*observer{}, pings: map[string]*pinger{}, flows: map[string]*flower{}, arps: map[string]*arpinger{}, gone: map[string]vswitch.PortInfo{}}
	defer func() {
		for _, ob := range r.obs {
			if cerr := ob.close(); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
	}()
	for _, h := range sc.Hosts {
		ob, err := openObserver(n.nsOf(h.Name), pcapPath(o.Pcap, p.sw.Name, p.portOf[h.Name]))
		if err != nil {
			return nil, err
		}
		r.obs[h.Name] = ob
	}
	sinks, err := r.prepare()
	defer func() {
		for _, s := range sinks {
			s.close()
		}
	}()
	if err != nil {
		return nil, err
	}
	r.samp = newSampler(r)
	res, err := r.run(ctx)
	if err != nil {
		return nil, err
	}
	out = &Output{Result: res, Metrics: r.samp.metrics(res)}
	out.FDB, out.Neighbours = r.tables()
	for _, h := range sc.Hosts {
		out.HostMACs = append(out.HostMACs, n.macs[h.Name].String())
	}
	return out, nil
}

func needRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("sim --real and --compare need root: they make network namespaces and TAP devices")
	}
	return nil
}

// prepare makes a pinger per ping, a flower per flow and a UDP sink per
// flow destination.
func (r *runner) prepare() ([]*sink, error) {
	sp := &sinkPlan{byDst: map[sinkKey][]*flower{}}
	for _, st := range r.p.sc.Timeline {
		if st.Action == nil {
			continue
		}
		if k, ok := realActions[st.Action.Kind()]; ok {
			if err := k.prepare(r, st.Action, sp); err != nil {
				return nil, err
			}
		}
	}
	var sinks []*sink
	for _, k := range sp.keys {
		s, err := openSink(r.n.nsOf(k.host), k.ap, sp.flows)
		if err != nil {
			return sinks, err
		}
		sinks = append(sinks, s)
	}
	return sinks, nil
}

func (r *runner) hostWith(a netip.Addr) string {
	for _, h := range r.p.sc.Hosts {
		if h.Interfaces[0].IP.Addr() == a {
			return h.Name
		}
	}
	return ""
}

func (r *runner) tracef(format string, a ...any) {
	if r.o.Trace == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.o.Trace, "%11.6f %s\n", time.Since(r.t0).Seconds(), fmt.Sprintf(format, a...))
}

func (r *runner) fail(err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
}

func (r *runner) run(ctx context.Context) (*sim.Result, error) {
	sc := r.p.sc
	r.res = make([]sim.AssertionResult, len(sc.Assertions))
	r.bases = make([][2]float64, len(sc.Assertions))
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	r.t0 = time.Now()
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.samp.run(actx, r.t0, sc.Run.Tick)
	}()
	// One dispatcher for the steps and the timed assertions, in time
	// order; at the same time a window's snapshot comes first, then the
	// steps, then the judgements, so that a window opening with a step
	// counts all of it whatever the scheduler's delays.
	const (
		snapshot = iota
		step
		judge
	)
	type event struct {
		at   time.Duration
		kind int
		i    int
	}
	var evs []event
	for i, a := range sc.Assertions {
		if a.HasSince && a.Since > 0 {
			evs = append(evs, event{a.Since, snapshot, i})
		}
		if a.HasAt {
			evs = append(evs, event{a.At, judge, i})
		}
	}
	for i, st := range sc.Timeline {
		if st.Action != nil {
			evs = append(evs, event{r.p.starts[i], step, i})
		}
	}
	sort.SliceStable(evs, func(i, j int) bool {
		if evs[i].at != evs[j].at {
			return evs[i].at < evs[j].at
		}
		return evs[i].kind < evs[j].kind
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, e := range evs {
			if !sleepUntil(actx, r.t0.Add(e.at)) {
				return
			}
			switch e.kind {
			case snapshot:
				r.bases[e.i] = r.counts(&sc.Assertions[e.i])
			case judge:
				r.judge(e.i)
				r.tracef("assert %s", r.res[e.i])
			case step:
				st := sc.Timeline[e.i]
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := r.act(actx, st.Action); err != nil {
						r.fail(fmt.Errorf("line %d: %w", st.Line, err))
					}
				}()
			}
		}
	}()
	sleepUntil(ctx, r.t0.Add(r.p.end))
	cancel()
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := errors.Join(r.errs...); err != nil {
		return nil, err
	}
	for i, a := range sc.Assertions {
		if !a.HasAt {
			r.judge(i)
		}
	}
	return r.result(), nil
}

// act carries out one timeline action.
func (r *runner) act(ctx context.Context, a sim.Action) error {
	if k, ok := realActions[a.Kind()]; ok {
		return k.act(r, ctx, a)
	}
	return fmt.Errorf("timeline: %T not realised", a)
}

// raw hands fn a packet socket on host's eth0, as a pod with CAP_NET_RAW
// has: spoofed ARP, MAC floods. Unlike an attack tool's it goes through the
// qdisc, so that the host's observer sees what it sent.
func (r *runner) raw(host string, fn func(*podnet.FrameWriter) error) error {
	w, err := podnet.OpenFrameWriter(r.n.nsOf(host), "eth0", podnet.FrameOptions{Retry: true})
	if err != nil {
		return err
	}
	defer w.Close()
	return fn(w)
}

// macOf resolves a MAC that is an address or a host ("" is from's own).
func (r *runner) macOf(s, from string) (fdb.MAC, error) {
	if s == "" {
		return r.n.macs[from], nil
	}
	if m, ok := r.n.macs[strings.SplitN(s, ":", 2)[0]]; ok {
		return m, nil
	}
	return fdb.ParseMAC(s)
}

// ports are the switch's ports by scenario port name, and the daemon's
// port IDs' scenario names.
func (r *runner) ports() (map[string]vswitch.PortInfo, map[fdb.PortID]string) {
	byName := map[string]vswitch.PortInfo{}
	ids := map[fdb.PortID]string{}
	r.mu.Lock()
	for port, pi := range r.gone {
		byName[port] = pi
	}
	r.mu.Unlock()
	for _, pi := range r.n.d.Switch().Ports() {
		if port, ok := r.p.portOf[pi.Name]; ok {
			pi.Name = port
			byName[port] = pi
			ids[pi.ID] = port
		}
	}
	return byName, ids
}

// totals sums the scenario's ports: the daemon's own gateway port, which
// the scenario does not have, is left out.
func (r *runner) totals() vswitch.Counters {
	var t vswitch.Counters
	ports, _ := r.ports()
	for _, pi := range ports {
		c := pi.Counters
		t.RxFrames += c.RxFrames
		t.RxBytes += c.RxBytes
		t.TxFrames += c.TxFrames
		t.TxBytes += c.TxBytes
		t.Flooded += c.Flooded
		t.Unknown += c.Unknown
		for i := range c.Drops {
			t.Drops[i] += c.Drops[i]
		}
	}
	return t
}

func (r *runner) switchStat(name string) float64 {
	sw := r.n.d.Switch()
	t := r.totals()
	fs, as := sw.FDB().Stats(), sw.ARP().Stats()
	switch name {
	case "rx":
		return float64(t.RxFrames)
	case "tx":
		return float64(t.TxFrames)
	case "flooded":
		return float64(t.Flooded)
	case "unknown":
		return float64(t.Unknown)
	case "dropped":
		return float64(t.Dropped())
	case "fdb_entries":
		return float64(r.learned())
	case "fdb_learned":
		return float64(fs.Learned)
	case "fdb_moved":
		return float64(fs.Moved)
	case "fdb_flaps":
		return float64(fs.Flaps)
	case "fdb_aged":
		return float64(fs.Aged)
	case "fdb_evicted":
		return float64(fs.Evicted)
	case "fdb_refused":
		return float64(fs.Refused)
	case "fdb_flushed":
		return float64(fs.Flushed)
	case "arp_neighbours":
		return float64(as.Neighbours)
	case "arp_snooped":
		return float64(as.Snooped)
	case "arp_suppressed":
		return float64(as.Suppressed)
	case "arp_guard_drops":
		return float64(as.GuardDrops)
	}
	if reason, ok := strings.CutPrefix(name, "drop_"); ok {
		reason = strings.ReplaceAll(reason, "_", "-")
		for _, d := range vswitch.DropReasons() {
			if d.String() == reason {
				return float64(t.Drops[d])
			}
		}
	}
	return 0
}

// learned counts the learned FDB entries, as the simulator's fdb_entries
// does (the daemon's table also holds its gateway's local entry).
func (r *runner) learned() int {
	n := 0
	for _, e := range r.n.d.Switch().FDB().Entries() {
		if e.Kind == fdb.Learned {
			n++
		}
	}
	return n
}

// counts is what a counting assertion counts now (for flood ratios a
// numerator and a denominator).
func (r *runner) counts(a *sim.Assertion) [2]float64 {
	switch a.Kind {
	case "delivered", "lost", "duplicates":
		var sent, got, dups int
		add := func(s, g, d int) { sent, got, dups = sent+s, got+g, dups+d }
		switch {
		case a.Flow == "*":
			for _, f := range r.forder {
				f.mu.Lock()
				add(f.sent, f.got, f.dups)
				f.mu.Unlock()
			}
		case a.Flow != "":
			f := r.flows[a.Flow]
			f.mu.Lock()
			add(f.sent, f.got, f.dups)
			f.mu.Unlock()
		case r.arps[a.Ping] != nil:
			s, g := r.arps[a.Ping].counts()
			add(s, min(g, s), max(g-s, 0))
		default:
			for _, pg := range r.order {
				if a.Ping == "*" || a.Ping == pg.spec.Name {
					pg.mu.Lock()
					add(pg.sent, pg.received, pg.dups)
					pg.mu.Unlock()
				}
			}
		}
		switch a.Kind {
		case "delivered":
			return [2]float64{float64(got)}
		case "lost":
			return [2]float64{float64(sent - got)}
		}
		return [2]float64{float64(dups)}
	case "frames":
		host, dir := r.frameSource(a)
		ob := r.obs[host]
		if ob == nil {
			return [2]float64{}
		}
		c := ob.counts()
		ft := 0
		for i, n := range sim.FrameTypes() {
			if n == a.Type {
				ft = i
			}
		}
		return [2]float64{float64(c[dir][ft])}
	case "flood_ratio":
		if a.Port == "" {
			t := r.totals()
			return [2]float64{float64(t.Flooded), float64(t.RxFrames)}
		}
		ports, _ := r.ports()
		pi := ports[a.Port]
		return [2]float64{float64(pi.Counters.Flooded), float64(pi.Counters.RxFrames)}
	case "switch_stat":
		return [2]float64{r.switchStat(a.Stat)}
	}
	return [2]float64{}
}

// frameSource is the host whose observer counts a frames check, and the
// direction as that host sees it: a switch port's tx is its host's rx.
func (r *runner) frameSource(a *sim.Assertion) (string, int) {
	dir := rx
	if a.Dir == "tx" {
		dir = tx
	}
	ref := a.Port
	if h := strings.SplitN(ref, ":", 2)[0]; r.p.hosts[h] != nil {
		return h, dir
	}
	_, port, _ := strings.Cut(ref, ":")
	return r.p.hostOf[port], 1 - dir
}

// judge evaluates assertion i now, as the simulator does.
func (r *runner) judge(i int) {
	a := &r.p.sc.Assertions[i]
	res := sim.AssertionResult{Line: a.Line, Text: a.Describe()}
	base := r.bases[i]
	switch a.Kind {
	case "delivered", "lost", "duplicates", "frames", "switch_stat":
		v := r.counts(a)[0] - base[0]
		res.Pass, res.Got = a.Cmp.Holds(v), sim.FormatNum(v)
	case "flood_ratio":
		c := r.counts(a)
		num, den := c[0]-base[0], c[1]-base[1]
		ratio := 0.0
		if den > 0 {
			ratio = num / den
		}
		res.Pass, res.Got = a.Cmp.Holds(ratio), fmt.Sprintf("%.4f (%s of %s frames flooded)", ratio, sim.FormatNum(num), sim.FormatNum(den))
	case "ttl":
		pg := r.pings[a.Ping]
		pg.mu.Lock()
		ttl := pg.ttl
		pg.mu.Unlock()
		res.Pass, res.Got = ttl >= 0 && a.Cmp.Holds(float64(ttl)), fmt.Sprint(ttl)
		if ttl < 0 {
			res.Got = "no reply"
		}
	case "fdb":
		want, err := r.macOf(a.MAC, "")
		port, found := "", false
		if err == nil {
			port, found = r.fdbFind(want, a.VLAN)
		}
		res.Pass = found != a.Absent && (a.Absent || port == a.Port)
		res.Got = "absent"
		if found {
			res.Got = "on " + port
		}
	case "arp_cache":
		want, _ := r.macOf(a.MAC, a.Host)
		mac, found := r.neighbour(a.Host, a.IP)
		res.Pass = found != a.Absent && (a.Absent || mac == want)
		res.Got = "no entry"
		if found {
			res.Got = mac.String() + r.whoHas(mac)
		}
	case "echo_from":
		ob := r.obs[a.Host]
		res.Pass = ob != nil && ob.answered(a.IP)
		res.Got = "no echo request from it answered"
		if res.Pass {
			res.Got = "answered"
		}
	case "stopped":
		res.Pass, res.Got = r.stopped() == a.Reason, r.stopped()
	}
	r.res[i] = res
}

func (r *runner) stopped() string {
	if r.p.sc.Run.Duration > 0 {
		return "duration"
	}
	return "idle"
}

func (r *runner) whoHas(mac fdb.MAC) string {
	for _, h := range r.p.sc.Hosts {
		if r.n.macs[h.Name] == mac {
			return " (" + h.Name + ")"
		}
	}
	return ""
}

// fdbFind looks mac up in the daemon's table as the switch would now.
func (r *runner) fdbFind(mac fdb.MAC, vlan uint16) (string, bool) {
	_, ids := r.ports()
	sw := r.n.d.Switch()
	now := sw.Now()
	ageing := int64(r.p.sw.Ageing)
	for _, e := range sw.FDB().Entries() {
		if fdb.MACFrom(e.MAC) != mac || (vlan != 0 && e.VLAN != vlan) {
			continue
		}
		if e.Kind == fdb.Learned && ageing > 0 && now-e.LastSeen >= ageing {
			continue
		}
		if name, ok := ids[e.Port]; ok {
			return name, true
		}
		return fmt.Sprintf("port %d", e.Port), true
	}
	return "", false
}

// neighbour reads host's kernel neighbour table: an entry that resolved
// (not incomplete or failed) maps ip to its MAC.
func (r *runner) neighbour(host string, ip netip.Addr) (fdb.MAC, bool) {
	var mac fdb.MAC
	found := false
	netns.FromPath(netns.PathOf(r.n.nsOf(host))).Run(func() error {
		ns, err := netlink.NeighList(0, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, nb := range ns {
			if a, ok := netip.AddrFromSlice(nb.IP.To4()); !ok || a != ip {
				continue
			}
			if nb.State&(netlink.NUD_INCOMPLETE|netlink.NUD_FAILED|netlink.NUD_NOARP) != 0 || len(nb.HardwareAddr) != 6 {
				continue
			}
			mac, found = fdb.MACFrom(nb.HardwareAddr), true
		}
		return nil
	})

	return mac, found
}

// arpCacheSize counts host's resolved neighbour entries.
func (r *runner) arpCacheSize(host string) int {
	n := 0
	netns.FromPath(netns.PathOf(r.n.nsOf(host))).Run(func() error {
		ns, err := netlink.NeighList(0, netlink.FAMILY_V4)
		for _, nb := range ns {
			if nb.State&(netlink.NUD_INCOMPLETE|netlink.NUD_FAILED|netlink.NUD_NOARP) == 0 && len(nb.HardwareAddr) == 6 {
				n++
			}
		}
		return err
	})

	return n
}

// result is the run in the simulator's shape. What has no real
// counterpart stays zero: events and deliveries (no event queue), the
// links' counts (a TAP is no cable; its port's counters say what it
// carried) and the hosts' ignored frames.
func (r *runner) result() *sim.Result {
	sc := r.p.sc
	res := &sim.Result{Scenario: sc.Name, Seed: sc.Seed, End: r.p.end, Stopped: r.stopped(), Passed: true, Assertions: r.res, Dataplane: "real node"}
	if res.Scenario == "" {
		res.Scenario = sc.File
	}
	for _, a := range r.res {
		if !a.Pass {
			res.Passed = false
			res.Failed++
		}
	}
	for _, pg := range r.order {
		pg.mu.Lock()
		pr := sim.PingResult{Name: pg.spec.Name, From: pg.spec.From, To: pg.spec.To, Sent: pg.sent, Received: pg.received,
			Lost: pg.sent - pg.received, Duplicates: pg.dups, Errors: pg.errors, TTL: pg.ttl, RTTMin: pg.rttMin, RTTMax: pg.rttMax}
		if pg.received > 0 {
			pr.RTTAvg = pg.rttSum / time.Duration(pg.received)
		}
		pg.mu.Unlock()
		res.Pings = append(res.Pings, pr)
	}
	for _, ap := range r.aorder {
		sent, got := ap.counts()
		res.Arpings = append(res.Arpings, sim.ArpingResult{Name: ap.spec.Name, From: ap.spec.From, To: ap.spec.To, Sent: sent, Replies: got})
	}
	for _, f := range r.forder {
		f.mu.Lock()
		res.Flows = append(res.Flows, sim.FlowResult{Name: f.spec.Name, From: f.spec.From, To: f.spec.To, Sent: f.sent, Received: f.got, Lost: f.sent - f.got, Duplicates: f.dups})
		f.mu.Unlock()
	}
	sw := r.n.d.Switch()
	t := r.totals()
	fs := sw.FDB().Stats()
	fs.Entries = r.learned()
	sr := sim.SwitchResult{Name: r.p.sw.Name, Rx: t.RxFrames, Tx: t.TxFrames, Flooded: t.Flooded, Unknown: t.Unknown, Dropped: t.Dropped(),
		FDB: fs, ARP: sw.ARP().Stats()}
	if t.RxFrames > 0 {
		sr.FloodRatio = float64(t.Flooded) / float64(t.RxFrames)
	}
	ports, _ := r.ports()
	var names []string
	for name := range ports {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		pi := ports[name]
		r.mu.Lock()
		_, gone := r.gone[name]
		r.mu.Unlock()
		if gone {
			continue // as the simulator's result, the live ports only
		}
		// Learned entries only, as the simulator's ports (whose hosts
		// have no local entries) count them.
		pi.FDB = sw.FDB().PortEntries(pi.ID)
		sr.Ports = append(sr.Ports, pi)
	}
	res.Switches = []sim.SwitchResult{sr}
	// A cable's tail drops are its TAP's: what the TAP dropped before the
	// daemon read it (its queue full, or lock_pod_mac's kernel filter).
	drops := r.n.d.DeviceDrops()
	for _, l := range sc.Links {
		res.Links = append(res.Links, sim.LinkResult{Name: l.Name, Up: true, QueueDrops: drops[linkHost(r.p, l)]})
	}
	for _, h := range sc.Hosts {
		res.Hosts = append(res.Hosts, sim.HostResult{Name: h.Name, ARPCache: r.arpCacheSize(h.Name)})
	}
	return res
}

// tables are the daemon's learned FDB entries and snooped neighbours, by
// scenario names; the gateway port's are left out.
func (r *runner) tables() ([]sim.FDBRow, []sim.NeighbourRow) {
	_, ids := r.ports()
	sw := r.n.d.Switch()
	now := sw.Now()
	ageing := int64(r.p.sw.Ageing)
	var fr []sim.FDBRow
	var nr []sim.NeighbourRow
	for _, e := range sw.FDB().Entries() {
		name, ok := ids[e.Port]
		if e.Kind != fdb.Learned || !ok || (ageing > 0 && now-e.LastSeen >= ageing) {
			continue
		}
		fr = append(fr, sim.FDBRow{Switch: r.p.sw.Name, MAC: fdb.MACFrom(e.MAC).String(), VLAN: e.VLAN, Port: name})
	}
	for _, nb := range sw.ARP().Neighbours() {
		name, ok := ids[nb.Port]
		if !ok || !nb.IP.Is4() {
			continue
		}
		nr = append(nr, sim.NeighbourRow{Switch: r.p.sw.Name, IP: nb.IP.String(), MAC: nb.MAC.String(), VLAN: nb.VLAN, Port: name})
	}
	sim.SortTables(fr, nr)
	return fr, nr
}
