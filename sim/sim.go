package sim

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/tapswitch/tapswitch/fdb"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

// Options are the outputs and overrides of one run. The zero value runs
// the scenario silently and returns its Result.
type Options struct {
	// Seed replaces the scenario's seed when SeedSet.
	Seed    uint64
	SeedSet bool
	// Trace, when set, receives one line per switch decision and host
	// action. TraceLimit caps the lines (0: no cap); a storm can write
	// millions.
	Trace      io.Writer
	TraceLimit int
	// Pcap, when set, opens one capture per link (or per port with
	// PcapPerPort) by file name, such as "pod1--cbr0.pcap". Captures are
	// stamped with simulated time from Epoch.
	Pcap        func(name string) (io.WriteCloser, error)
	PcapPerPort bool
	// Metrics, when set, receives the metrics JSON at the end of the run.
	Metrics io.Writer
	// CollectMetrics samples the metrics without writing them, for
	// Sim.Metrics (a plot).
	CollectMetrics bool
	// MaxEvents, when nonzero, caps the scenario's own limit.
	MaxEvents uint64
}

// Why a run stopped.
const (
	StopIdle      = "idle"       // nothing left to do
	StopDuration  = "duration"   // run.duration reached
	StopMaxEvents = "max_events" // run.max_events reached (a storm, say)
	StopMaxFrames = "max_frames" // run.max_frames frames in flight at once
)

// Epoch is simulated time zero in captures: fixed, so that the same seed
// gives byte-identical pcap files.
var Epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// Sim is one simulation: switches, hosts and links driven by a
// discrete-event engine on a virtual clock. It is single-threaded; build it
// with New and call Run once.
type Sim struct {
	sc   *Scenario
	opts Options
	seed uint64

	now       int64
	q         queue
	fg        int // events other than ticks in q
	pool      pool
	rng       *rand.Rand
	events    uint64
	delivered uint64
	stopped   string
	ran       bool
	duration  int64
	maxEvents uint64
	maxFrames int
	tick      int64

	switches []*swNode
	hosts    []*host
	links    []*link
	eps      []endpoint
	epochs   uint32

	pings   []*pingState
	arpings []*arpingState
	flows   []*flowState
	floods  []*floodState
	spoofs  []*spoofState
	steps   []Step
	checks  []*check

	// names, for references resolved while building and running
	hostByName   map[string]int32
	swByName     map[string]int32
	linkByName   map[string]int32
	flowByName   map[string]int32
	probeByName  map[string]probeRef
	movedTargets map[string]bool // switch:port names that moves create
	typedPorts   map[string]bool // ports whose frames an assertion counts by type

	// ingress cache: see ingress()
	islots []int32
	iref   []bool
	ihand  int

	one [][]byte

	tr      *tracer
	caps    []*capture
	metrics *metrics
	err     error // first output error
}

// clock is the switches' view of simulated time.
type clock struct{ s *Sim }

func (c clock) Now() int64 { return c.s.now }

// Now is the simulated time.
func (s *Sim) Now() time.Duration { return time.Duration(s.now) }

// Run runs sc with opts: New and Run in one call.
func Run(sc *Scenario, opts Options) (*Result, error) {
	s, err := New(sc, opts)
	if err != nil {
		return nil, err
	}
	return s.Run()
}

// New builds the simulation: switches with their ports, hosts, links, and
// the timeline and assertions, all scheduled. Errors about the scenario are
// *Error and name the line.
func New(sc *Scenario, opts Options) (*Sim, error) {
	s := &Sim{
		sc: sc, opts: opts, seed: sc.Seed,
		duration: int64(sc.Run.Duration), maxEvents: sc.Run.MaxEvents, maxFrames: sc.Run.MaxFrames, tick: int64(sc.Run.Tick),
		hostByName: map[string]int32{}, swByName: map[string]int32{}, linkByName: map[string]int32{},
		flowByName: map[string]int32{}, probeByName: map[string]probeRef{}, movedTargets: map[string]bool{}, typedPorts: map[string]bool{},
		one: make([][]byte, 1),
	}
	if opts.SeedSet {
		s.seed = opts.Seed
	}
	if opts.MaxEvents > 0 && (s.maxEvents == 0 || opts.MaxEvents < s.maxEvents) {
		s.maxEvents = opts.MaxEvents
	}
	if s.tick <= 0 {
		s.tick = int64(DefaultTick)
	}
	s.rng = rand.New(rand.NewPCG(s.seed, s.seed^0x9e3779b97f4a7c15))
	s.pool.size = ethLen + 4 + 1500
	if opts.Trace != nil {
		s.tr = &tracer{w: bufio.NewWriterSize(opts.Trace, 64<<10), limit: opts.TraceLimit}
	}
	if opts.Metrics != nil || opts.CollectMetrics {
		s.metrics = &metrics{}
	}
	if err := s.build(); err != nil {
		s.closeCaptures()
		return nil, err
	}
	if s.err != nil {
		s.closeCaptures()
		return nil, s.err
	}
	return s, nil
}

func (s *Sim) schedule(at int64, k evKind, a int32, b uint32, buf int32) {
	if k != evTick {
		s.fg++
	}
	s.q.push(event{at: at, kind: k, a: a, b: b, buf: buf})
}

// Run runs the simulation to its end and judges the assertions. The error
// is for outputs that failed (a capture that could not be written); a failed
// assertion is in the Result.
func (s *Sim) Run() (*Result, error) {
	if s.ran {
		return nil, fmt.Errorf("sim: Run called twice")
	}
	s.ran = true
	s.tr.printf(s, "scenario %s: %s, %s, %s, seed %d", s.name(), plural(len(s.switches), "switch"), plural(len(s.hosts), "host"), plural(len(s.links), "link"), s.seed)
	for s.q.len() > 0 {
		if s.fg == 0 && s.duration == 0 {
			break
		}
		if s.duration > 0 && s.q.peek().at > s.duration {
			break
		}
		if s.maxEvents > 0 && s.events >= s.maxEvents {
			s.stopped = StopMaxEvents
			break
		}
		if s.maxFrames > 0 && s.pool.inUse > s.maxFrames {
			s.stopped = StopMaxFrames
			break
		}
		ev := s.q.pop()
		s.now = ev.at
		s.events++
		if ev.kind != evTick {
			s.fg--
		}
		s.dispatch(&ev)
	}
	if s.stopped == "" {
		s.stopped = StopIdle
		if s.duration > 0 {
			s.stopped, s.now = StopDuration, s.duration
		}
	}
	s.tr.printf(s, "run stopped (%s) after %d events, %d frame deliveries", s.stopped, s.events, s.delivered)
	if s.metrics != nil {
		s.sample()
	}
	for _, c := range s.checks {
		switch {
		case !c.spec.HasAt:
			s.evaluate(c)
		case !c.judged:
			c.res.Pass, c.res.Got = false, fmt.Sprintf("not judged: the run ended at %v", time.Duration(s.now))
		}
	}
	res := s.result()
	if s.tr != nil {
		if s.tr.dropped > 0 {
			fmt.Fprintf(s.tr.w, "(%d more trace lines not shown)\n", s.tr.dropped)
		}
		if err := s.tr.w.Flush(); err != nil && s.err == nil {
			s.err = fmt.Errorf("trace: %w", err)
		}
	}
	s.closeCaptures()
	if s.opts.Metrics != nil && s.err == nil {
		if err := s.writeMetrics(s.opts.Metrics); err != nil {
			s.err = fmt.Errorf("metrics: %w", err)
		}
	}
	return res, s.err
}

func (s *Sim) name() string {
	if s.sc.Name != "" {
		return s.sc.Name
	}
	return s.sc.File
}

func (s *Sim) dispatch(ev *event) {
	switch ev.kind {
	case evDeliver:
		s.deliver(ev)
	case evTick:
		s.onTick()
	case evStep:
		s.runStep(int(ev.a))
	case evPing:
		s.pingSend(ev.a, uint16(ev.b))
	case evArping:
		s.arpingSend(ev.a)
	case evFlow:
		s.flowSend(ev.a)
	case evFlood:
		s.floodSend(ev.a)
	case evSpoof:
		s.spoofSend(ev.a)
	case evARPRetry:
		s.arpRetry(s.hosts[ev.a], ip4(ev.b))
	case evAssert:
		s.evaluate(s.checks[ev.a])
	case evSnapshot:
		c := s.checks[ev.a]
		c.base0, c.base1 = c.counts(s)
		c.windowed = true
	}
}

// onTick ages every switch's tables and samples the metrics. Ticks are
// background: they keep going only while something else is scheduled (or
// up to run.duration).
func (s *Sim) onTick() {
	for _, n := range s.switches {
		n.sw.Tick()
	}
	if s.metrics != nil {
		s.sample()
	}
	next := s.now + s.tick
	if s.fg > 0 || (s.duration > 0 && next <= s.duration) {
		s.schedule(next, evTick, 0, 0, 0)
	}
}

// ingressCacheSize bounds the vswitch.Ingress values alive at once. Each
// holds a 64 KiB scratch buffer, so one per port would cost a 10,000-host
// run 640 MiB; an Ingress carries no state between Receive calls, so ports
// share a small cache, evicted by the clock (second-chance) rule. Scenarios
// of up to this many switch ports never evict.
const ingressCacheSize = 32

func (s *Sim) ingress(e int32) *vswitch.Ingress {
	ep := &s.eps[e]
	if ep.ing != nil {
		s.iref[ep.islot] = true
		return ep.ing
	}
	in, err := s.switches[ep.sw].sw.Ingress(ep.port)
	if err != nil {
		return nil // the port was removed
	}
	if len(s.islots) < ingressCacheSize {
		ep.islot = int32(len(s.islots))
		s.islots = append(s.islots, e)
		s.iref = append(s.iref, true)
	} else {
		for s.iref[s.ihand] {
			s.iref[s.ihand] = false
			s.ihand = (s.ihand + 1) % len(s.islots)
		}
		s.eps[s.islots[s.ihand]].ing = nil
		s.islots[s.ihand] = e
		s.iref[s.ihand] = true
		ep.islot = int32(s.ihand)
		s.ihand = (s.ihand + 1) % len(s.islots)
	}
	ep.ing = in
	return in
}

// swNode is one simulated switch: a real vswitch.Switch on the virtual
// clock, whose Tracer feeds the trace and the metrics.
type swNode struct {
	s      *Sim
	idx    int32
	name   string
	spec   *SwitchSpec
	sw     *vswitch.Switch
	portEP []int32 // fdb.PortID -> endpoint, -1 when none
	ports  map[string]*PortSpec
	byName map[string]int32 // port name -> endpoint, removed ports included

	rx, flooded, unknown, dropped, copies uint64
}

// Frame is the vswitch.Tracer hook: count, and trace when asked.
func (n *swNode) Frame(in fdb.PortID, frame []byte, d vswitch.Decision) {
	n.rx++
	n.copies += uint64(d.Copies)
	if d.Dropped {
		n.dropped++
	} else if d.Flooded {
		n.flooded++
		if d.Unknown {
			n.unknown++
		}
	}
	if n.s.tr != nil {
		n.s.traceDecision(n, in, frame, d)
	}
}

func (n *swNode) epOf(id fdb.PortID) int32 {
	if int(id) < len(n.portEP) {
		return n.portEP[id]
	}
	return -1
}

func (n *swNode) portName(id fdb.PortID) string {
	if e := n.epOf(id); e >= 0 {
		return n.s.eps[e].portName
	}
	return fmt.Sprintf("port %d", id)
}

// swPort is a switch port's vswitch.Port: it copies what the switch lends
// and puts it on the port's link, never into another switch directly.
type swPort struct {
	s  *Sim
	ep int32
}

// errRefused tells the switch that the link did not take a frame (down,
// unplugged, or its queue full); the switch counts it as a tx error.
var errRefused = fmt.Errorf("sim: link refused the frame")

var _ vswitch.Port = (*swPort)(nil)

func (p *swPort) WriteBatch(frames [][]byte) (int, error) {
	n := 0
	var err error
	for _, f := range frames {
		if p.s.transmit(p.ep, p.s.pool.copyOf(f)) {
			n++
		} else {
			err = errRefused
		}
	}
	return n, err
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	if strings.HasSuffix(what, "h") {
		return fmt.Sprintf("%d %ses", n, what)
	}
	return fmt.Sprintf("%d %ss", n, what)
}
