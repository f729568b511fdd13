package simreal

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"

	"github.com/tapswitch/tapswitch/fdb"
	"github.com/tapswitch/tapswitch/internal/podnet"
	"github.com/tapswitch/tapswitch/sim"
)

// realActions is the one table of what the real node does with each kind
// of timeline action, keyed by sim.Action.Kind: the kinds it refuses say
// why in plan; a kind missing from the table is refused as not realised.
var realActions = map[string]realAction{
	"ping": entry(realKind[*sim.Ping]{
		plan: func(_ *plan, a *sim.Ping, _ int) (time.Duration, error) { return probeBusy(a.Count, a.Interval), nil },
		scale: func(a *sim.Ping, f float64) *sim.Ping {
			return withInterval(a, f, func(c *sim.Ping) *time.Duration { return &c.Interval })
		},
		prepare: func(r *runner, a *sim.Ping, _ *sinkPlan) error {
			pg := &pinger{spec: a, ttl: -1}
			r.pings[a.Name] = pg
			r.order = append(r.order, pg)
			return nil
		},
		act: func(r *runner, ctx context.Context, a *sim.Ping) error {
			dst, err := r.n.addrOf(a.To)
			if err != nil {
				return err
			}
			r.tracef("timeline: %s pings %s (%d x %d bytes)", a.From, a.To, a.Count, a.Size)
			return r.pings[a.Name].run(ctx, r.n.nsOf(a.From), dst)
		},
	}),
	"arping": entry(realKind[*sim.Arping]{
		plan: func(_ *plan, a *sim.Arping, _ int) (time.Duration, error) { return probeBusy(a.Count, a.Interval), nil },
		scale: func(a *sim.Arping, f float64) *sim.Arping {
			return withInterval(a, f, func(c *sim.Arping) *time.Duration { return &c.Interval })
		},
		prepare: func(r *runner, a *sim.Arping, _ *sinkPlan) error {
			ap := &arpinger{spec: a}
			r.arps[a.Name] = ap
			r.aorder = append(r.aorder, ap)
			return nil
		},
		act: func(r *runner, ctx context.Context, a *sim.Arping) error {
			dst, err := r.n.addrOf(a.To)
			if err != nil {
				return err
			}
			h := r.p.hosts[a.From]
			r.tracef("timeline: %s arpings %v (%d x)", a.From, dst, a.Count)
			return r.raw(a.From, func(w *podnet.FrameWriter) error {
				return r.arps[a.Name].run(ctx, w, r.obs[a.From], r.n.macs[a.From], h.Interfaces[0].IP.Addr(), dst)
			})
		},
	}),
	"flow": entry(realKind[*sim.Flow]{
		plan: func(_ *plan, a *sim.Flow, _ int) (time.Duration, error) {
			if a.Count > 0 {
				return time.Duration(float64(a.Count) / a.Rate * float64(time.Second)), nil
			}
			return 0, nil
		},
		scale: func(a *sim.Flow, f float64) *sim.Flow {
			c := *a
			c.Rate /= f
			return &c
		},
		prepare: func(r *runner, a *sim.Flow, sp *sinkPlan) error {
			f := &flower{spec: a, idx: uint32(len(sp.flows)), seen: make([]bool, a.Count)}
			sp.flows = append(sp.flows, f)
			r.flows[a.Name] = f
			r.forder = append(r.forder, f)
			dst, err := r.n.addrOf(a.To)
			if err != nil {
				return fmt.Errorf("flow %s: to %w", a.Name, err)
			}
			host := r.hostWith(dst)
			if host == "" {
				return nil // nobody receives it
			}
			k := sinkKey{host, netip.AddrPortFrom(dst, uint16(a.Port))}
			if _, ok := sp.byDst[k]; !ok {
				sp.keys = append(sp.keys, k)
			}
			sp.byDst[k] = append(sp.byDst[k], f)
			return nil
		},
		act: func(r *runner, ctx context.Context, a *sim.Flow) error {
			dst, err := r.n.addrOf(a.To)
			if err != nil {
				return err
			}
			r.tracef("timeline: flow %s from %s to %s:%d, %g/s", a.Name, a.From, a.To, a.Port, a.Rate)
			return r.flows[a.Name].run(ctx, r.n.nsOf(a.From), netip.AddrPortFrom(dst, uint16(a.Port)))
		},
	}),
	"stop_flow": entry(realKind[*sim.StopFlow]{
		act: func(r *runner, _ context.Context, a *sim.StopFlow) error {
			r.tracef("timeline: stop flow %s", a.Flow)
			if f := r.flows[a.Flow]; f != nil {
				f.stop()
			}
			return nil
		},
	}),
	"remove_port": entry(realKind[*sim.RemovePort]{
		plan: func(p *plan, a *sim.RemovePort, line int) (time.Duration, error) {
			swName, port, _ := strings.Cut(a.Port, ":")
			if swName != p.sw.Name || p.hostOf[port] == "" {
				return 0, refuse(p.sc, line, "timeline remove_port %s: not a port a host is linked to", a.Port)
			}
			return 0, nil
		},
		act: func(r *runner, ctx context.Context, a *sim.RemovePort) error {
			_, port, _ := strings.Cut(a.Port, ":")
			host := r.p.hostOf[port]
			r.tracef("timeline: remove port %s (pod %s)", a.Port, host)
			ports, _ := r.ports()
			r.mu.Lock()
			r.gone[port] = ports[port]
			r.mu.Unlock()
			return r.n.inNode(func() error { return r.n.d.DeletePod(ctx, host) })
		},
	}),
	"link": entry(realKind[*sim.LinkState]{
		plan: func(p *plan, _ *sim.LinkState, line int) (time.Duration, error) {
			return 0, refuse(p.sc, line, "timeline link_down/link_up: the daemon does not flush a port whose TAP loses its carrier, as the simulator (and the Linux bridge) does")
		},
	}),
	"move": entry(realKind[*sim.Move]{
		plan: func(p *plan, _ *sim.Move, line int) (time.Duration, error) {
			return 0, refuse(p.sc, line, "timeline move: the daemon cannot plug a pod's interface into another port and keep the old one")
		},
	}),
	"spoof_arp": entry(realKind[*sim.SpoofARP]{
		plan: func(_ *plan, a *sim.SpoofARP, _ int) (time.Duration, error) {
			return time.Duration(a.Count-1) * a.Interval, nil
		},
		scale: func(a *sim.SpoofARP, f float64) *sim.SpoofARP {
			return withInterval(a, f, func(c *sim.SpoofARP) *time.Duration { return &c.Interval })
		},
		act: func(r *runner, ctx context.Context, a *sim.SpoofARP) error {
			mac, err := r.macOf(a.MAC, a.From)
			if err != nil {
				return err
			}
			dst, tha, tpa := broadcast, fdb.MAC{}, a.IP
			if a.Op == 2 {
				tha = broadcast
			}
			if a.Target != "" {
				dst, tha, tpa = r.n.macs[a.Target], r.n.macs[a.Target], r.p.hosts[a.Target].Interfaces[0].IP.Addr()
			}
			r.tracef("timeline: %s claims %v is at %v (%d x)", a.From, a.IP, mac, a.Count)
			f := arpFrame(dst, r.n.macs[a.From], a.Op, mac, a.IP, tha, tpa)
			return r.raw(a.From, func(w *podnet.FrameWriter) error {
				start := time.Now()
				for i := 0; i < a.Count; i++ {
					if !sleepUntil(ctx, start.Add(time.Duration(i)*a.Interval)) {
						return nil
					}
					if err := w.Write(f); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}),
	"mac_flood": entry(realKind[*sim.MACFlood]{
		plan: func(_ *plan, a *sim.MACFlood, _ int) (time.Duration, error) {
			return time.Duration(float64(a.Count) / a.Rate * float64(time.Second)), nil
		},
		scale: func(a *sim.MACFlood, f float64) *sim.MACFlood {
			c := *a
			c.Rate /= f
			return &c
		},
		act: func(r *runner, ctx context.Context, a *sim.MACFlood) error {
			r.tracef("timeline: %s floods %d frames from random MACs at %g/s", a.From, a.Count, a.Rate)
			rng := rand.New(rand.NewPCG(r.p.sc.Seed, 0x6d6163))
			randomMAC := func() fdb.MAC {
				v := rng.Uint64()
				m := fdb.MAC{byte(v >> 40), byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
				m[0] = m[0]&^1 | 2
				return m
			}
			f := make([]byte, 60)
			f[12], f[13] = 0x88, 0xb5 // IEEE local experimental, as the simulator's filler
			for i := 14; i < len(f); i++ {
				f[i] = byte(i - 14)
			}
			return r.raw(a.From, func(w *podnet.FrameWriter) error {
				start := time.Now()
				for i := 0; i < a.Count; i++ {
					if !sleepUntil(ctx, start.Add(time.Duration(float64(i)/a.Rate*float64(time.Second)))) {
						return nil
					}
					dst := broadcast
					if a.RandomTo {
						dst = randomMAC()
					}
					src := randomMAC()
					copy(f[0:6], dst[:])
					copy(f[6:12], src[:])
					if err := w.Write(f); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}),
	"garp": entry(realKind[*sim.GARP]{
		act: func(r *runner, _ context.Context, a *sim.GARP) error {
			h := r.p.hosts[a.Host]
			ip, mac := h.Interfaces[0].IP.Addr(), r.n.macs[a.Host]
			r.tracef("timeline: %s announces %v", a.Host, ip)
			return r.raw(a.Host, func(w *podnet.FrameWriter) error {
				return w.Write(arpFrame(broadcast, mac, 1, mac, ip, fdb.MAC{}, ip))
			})
		},
	}),
}

// realKind is one kind's entry in realActions, on its own type.
type realKind[A sim.Action] struct {
	// plan checks the action (a refusal says why the real node cannot do
	// it) and says how long it keeps the node busy after its step; nil:
	// nothing to check, done at once.
	plan func(p *plan, a A, line int) (time.Duration, error)
	// scale returns a copy of a whose times run f times as fast (Scale);
	// nil: nothing in it to scale.
	scale func(a A, f float64) A
	// prepare sets up what the action counts, and the UDP sinks of flows,
	// before the run starts; nil: nothing to set up.
	prepare func(r *runner, a A, sp *sinkPlan) error
	// act carries the action out at its step's time; nil only where plan
	// refuses the kind.
	act func(r *runner, ctx context.Context, a A) error
}

// realAction is a realKind on sim.Action, as realActions holds it.
type realAction struct {
	plan    func(p *plan, a sim.Action, line int) (time.Duration, error)
	scale   func(a sim.Action, f float64) sim.Action
	prepare func(r *runner, a sim.Action, sp *sinkPlan) error
	act     func(r *runner, ctx context.Context, a sim.Action) error
}

func entry[A sim.Action](k realKind[A]) realAction {
	return realAction{
		plan: func(p *plan, a sim.Action, line int) (time.Duration, error) {
			if k.plan == nil {
				return 0, nil
			}
			return k.plan(p, a.(A), line)
		},
		scale: func(a sim.Action, f float64) sim.Action {
			if k.scale == nil {
				return a
			}
			return k.scale(a.(A), f)
		},
		prepare: func(r *runner, a sim.Action, sp *sinkPlan) error {
			if k.prepare == nil {
				return nil
			}
			return k.prepare(r, a.(A), sp)
		},
		act: func(r *runner, ctx context.Context, a sim.Action) error {
			if k.act == nil {
				return fmt.Errorf("timeline: %T not realised", a)
			}
			return k.act(r, ctx, a.(A))
		},
	}
}

// sinkKey is where a flow is received: a host and its UDP address.
type sinkKey struct {
	host string
	ap   netip.AddrPort
}

// sinkPlan gathers the flows and, per destination, the flows a UDP sink
// there counts, in the order the destinations first appear.
type sinkPlan struct {
	flows []*flower
	byDst map[sinkKey][]*flower
	keys  []sinkKey
}

// probeBusy is how long a ping or arping of count probes interval apart
// keeps the node busy: until its last answer has had time to come.
func probeBusy(count int, interval time.Duration) time.Duration {
	return time.Duration(count-1)*interval + settle
}

// withInterval is a copy of a whose interval (iv) runs f times as fast.
func withInterval[T any](a *T, f float64, iv func(*T) *time.Duration) *T {
	c := *a
	d := iv(&c)
	*d = scaleDuration(*d, f)
	return &c
}

// scaleDuration is x when time runs f times as fast.
func scaleDuration(x time.Duration, f float64) time.Duration {
	return time.Duration(float64(x) * f)
}
