package demo

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tapswitch/tapswitch/arp"
	"github.com/tapswitch/tapswitch/fdb"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

// tracer records the switch's decisions on ARP and IPv4 frames while on,
// so that the demo can say which frames flooded and what was learned. It
// copies what it needs out of the frame: the switch lends frames only for
// the call.
type tracer struct {
	on     atomic.Bool
	mu     sync.Mutex
	events []event
}

const maxEvents = 200

type event struct {
	in       fdb.PortID
	src, dst fdb.MAC
	arp      bool
	op       uint16
	spa, tpa netip.Addr // ARP sender/target or IPv4 source/destination
	proto    uint8      // IPv4 protocol
	d        vswitch.Decision
}

func (t *tracer) Frame(in fdb.PortID, f []byte, d vswitch.Decision) {
	if !t.on.Load() {
		return
	}
	if len(f) < vswitch.VnetHdrLen+14 {
		return
	}
	eth := f[vswitch.VnetHdrLen:]
	e := event{in: in, dst: fdb.MACFrom(eth[0:]), src: fdb.MACFrom(eth[6:]), d: d}
	switch binary.BigEndian.Uint16(eth[12:]) {
	case 0x0806:
		p, err := arp.Parse(eth[14:])
		if err != nil {
			return
		}
		e.arp, e.op, e.spa, e.tpa = true, p.Op, p.SPA, p.TPA
	case 0x0800:
		if len(eth) < 14+20 {
			return
		}
		ip := eth[14:]
		e.proto = ip[9]
		e.spa = netip.AddrFrom4([4]byte(ip[12:16]))
		e.tpa = netip.AddrFrom4([4]byte(ip[16:20]))
	default:
		return // IPv6 neighbour discovery and the like: not part of the story
	}
	t.mu.Lock()
	if len(t.events) < maxEvents {
		t.events = append(t.events, e)
	}
	t.mu.Unlock()
}

// take stops recording and returns what was recorded.
func (t *tracer) take() []event {
	t.on.Store(false)
	t.mu.Lock()
	defer t.mu.Unlock()
	ev := t.events
	t.events = nil
	return ev
}

// names maps ports and MACs to the names a reader knows.
type names struct {
	ports map[fdb.PortID]string
	macs  map[fdb.MAC]string
}

func (n names) port(id fdb.PortID) string {
	if s, ok := n.ports[id]; ok {
		return s
	}
	return fmt.Sprintf("port %d", id)
}

func (n names) mac(m fdb.MAC) string {
	if m == (fdb.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) {
		return "broadcast"
	}
	if s, ok := n.macs[m]; ok {
		return s
	}
	return m.String()
}

// describe renders events one line each, folding runs of like IPv4 frames.
func describe(evs []event, n names) []string {
	var out []string
	for i := 0; i < len(evs); {
		e := evs[i]
		j := i + 1
		if !e.arp {
			for j < len(evs) && !evs[j].arp && evs[j].in == e.in && evs[j].src == e.src && evs[j].dst == e.dst &&
				evs[j].d.Flooded == e.d.Flooded && evs[j].d.Learn != fdb.Inserted {
				j++
			}
		}
		var what string
		if e.arp {
			if e.op == 1 {
				what = fmt.Sprintf("ARP who-has %s tell %s", e.tpa, e.spa)
			} else {
				what = fmt.Sprintf("ARP %s is-at %s", e.spa, e.src)
			}
		} else {
			proto := map[uint8]string{1: "ICMP", 6: "TCP", 17: "UDP"}[e.proto]
			if proto == "" {
				proto = fmt.Sprintf("proto %d", e.proto)
			}
			what = fmt.Sprintf("IPv4 %s %s -> %s", proto, e.spa, e.tpa)
			if j-i > 1 {
				what += fmt.Sprintf(" (x%d)", j-i)
			}
		}
		var did []string
		if e.d.Learn == fdb.Inserted || e.d.Learn == fdb.Moved {
			did = append(did, fmt.Sprintf("learned %s on port %s", e.src, n.port(e.in)))
		}
		switch {
		case e.d.Dropped:
			did = append(did, "dropped ("+e.d.Drop.String()+")")
		case e.d.Flooded && e.d.Unknown:
			did = append(did, fmt.Sprintf("destination unknown: flooded to %d ports", e.d.Copies))
		case e.d.Flooded:
			did = append(did, fmt.Sprintf("flooded to %d ports", e.d.Copies))
		default:
			did = append(did, "sent out "+n.port(e.d.Out)+" only")
		}
		out = append(out, fmt.Sprintf("%-7s -> %-9s %-44s %s", n.port(e.in), n.mac(e.dst), what, strings.Join(did, "; ")))
		i = j
	}
	return out
}
