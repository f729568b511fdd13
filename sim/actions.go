package sim

import (
	"strings"

	"go.yaml.in/yaml/v3"
)

// Action is one of the timeline's actions: *Ping, *Arping, *Flow,
// *StopFlow, *Move, *SpoofARP, *MACFlood, *LinkState, *GARP, *RemovePort.
//
// Each kind is written in one place (action_probes.go, action_attacks.go,
// action_topology.go): its type, how Parse reads it, how New checks it
// against the built topology, and what it does when its step comes. The
// ranges its fields may take are declared once there, next to the type,
// and read by both the parser and the builder.
type Action interface {
	// Kind is the kind's name: its YAML key, "link" for link_down and
	// link_up.
	Kind() string
	// parse fills the action from the YAML value of its key (one of the
	// kind's keys in actionKinds), defaults first.
	parse(p *parser, key string, v *yaml.Node)
	// build checks the action against the built topology (line is its
	// step's) and sets up its state; stops collects the flows that a
	// stop_flow stops.
	build(s *Sim, line int, stops map[string]bool) error
	// run carries the action out when its step's time comes.
	run(s *Sim)
}

// actionKinds is the one table of the timeline's actions: the YAML keys a
// step takes, in the order they are checked and listed in messages, each
// with the Action it makes.
var actionKinds = []struct {
	key string
	new func() Action
}{
	{"ping", func() Action { return new(Ping) }},
	{"arping", func() Action { return new(Arping) }},
	{"flow", func() Action { return new(Flow) }},
	{"stop_flow", func() Action { return new(StopFlow) }},
	{"move", func() Action { return new(Move) }},
	{"spoof_arp", func() Action { return new(SpoofARP) }},
	{"mac_flood", func() Action { return new(MACFlood) }},
	{"link_down", func() Action { return new(LinkState) }},
	{"link_up", func() Action { return new(LinkState) }},
	{"garp", func() Action { return new(GARP) }},
	{"remove_port", func() Action { return new(RemovePort) }},
}

// actionKeys are the keys of actionKinds, in its order.
var actionKeys = func() []string {
	keys := make([]string, len(actionKinds))
	for i, k := range actionKinds {
		keys[i] = k.key
	}
	return keys
}()

// intRange is the whole numbers an action's field takes: Parse accepts
// lo-hi; New, which also sees scenarios built in Go and scaled copies,
// refuses what falls below lo.
type intRange struct{ lo, hi int }

func (r intRange) below(v int) bool { return v < r.lo }
func (r intRange) in(v int) bool    { return v >= r.lo && v <= r.hi }

// optRange is optInt over r.
func (p *parser) optRange(f map[string]*yaml.Node, key string, dst *int, r intRange) {
	p.optInt(f, key, dst, int64(r.lo), int64(r.hi))
}

// numRange is intRange for numbers with a fraction (rates).
type numRange struct{ lo, hi float64 }

func (p *parser) optNumber(f map[string]*yaml.Node, key string, dst *float64, r numRange) {
	if x := f[key]; x != nil {
		*dst = p.number(x, key, r.lo, r.hi)
	}
}

func (p *parser) step(n *yaml.Node) Step {
	f := p.fields(n, "timeline step", append([]string{"at", "wait"}, actionKeys...)...)
	st := Step{Line: n.Line}
	if v := f["at"]; v != nil {
		st.At, st.HasAt = p.duration(v, "at"), true
	}
	if v := f["wait"]; v != nil {
		if st.HasAt {
			p.fail(v, "timeline step: give at or wait, not both")
		}
		st.Wait = p.duration(v, "wait")
	}
	var key string
	for _, k := range actionKinds {
		v := f[k.key]
		if v == nil {
			continue
		}
		if key != "" {
			p.fail(later(v, f[key]), "timeline step: one action per step (%s and %s)", key, k.key)
		}
		key = k.key
		st.Action = k.new()
		st.Action.parse(p, k.key, v)
	}
	if key == "" && f["at"] == nil && f["wait"] == nil {
		p.fail(n, "timeline step: empty (want at, wait or one of %s)", strings.Join(actionKeys, ", "))
	}
	return st
}

func (s *Sim) buildTimeline() error {
	sc := s.sc
	s.steps = sc.Timeline
	var at int64
	stops := map[string]bool{}
	for i := range s.steps {
		st := &s.steps[i]
		if st.HasAt {
			at = int64(st.At)
		} else {
			at += int64(st.Wait)
		}
		if st.At < 0 || st.Wait < 0 || at > int64(maxDuration) {
			return sc.errorf(st.Line, "timeline: time %v out of range", at)
		}
		if st.Action == nil {
			continue
		}
		if err := st.Action.build(s, st.Line, stops); err != nil {
			return err
		}
		s.schedule(at, evStep, int32(i), 0, 0)
	}
	for _, f := range s.flows {
		if f.spec.Count == 0 && !stops[f.spec.Name] && s.duration == 0 {
			return sc.errorf(f.line(s), "flow %q never ends: give it a count, a stop_flow step, or set run.duration", f.spec.Name)
		}
	}
	return nil
}

func (s *Sim) runStep(i int) {
	st := &s.steps[i]
	if st.Action != nil {
		st.Action.run(s)
	}
}

// mark sets bit i of a growing bitset and reports whether it was clear.
func mark(set *[]uint64, i int) bool {
	w := i >> 6
	for len(*set) <= w {
		*set = append(*set, 0)
	}
	bit := uint64(1) << (i & 63)
	if (*set)[w]&bit != 0 {
		return false
	}
	(*set)[w] |= bit
	return true
}
