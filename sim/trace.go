package sim

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/tapswitch/tapswitch/arp"
	"github.com/tapswitch/tapswitch/fdb"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

// tracer writes the readable trace. A nil *tracer is a trace that is off:
// every method checks, and the frame path tests s.tr before formatting
// anything, so a run without a trace formats nothing.
type tracer struct {
	w       *bufio.Writer
	limit   int
	lines   int
	dropped int
}

func (t *tracer) printf(s *Sim, format string, args ...any) {
	if t == nil {
		return
	}
	t.line(fmtTime(s.now) + " " + fmt.Sprintf(format, args...))
}

func (t *tracer) line(l string) {
	if t.limit > 0 && t.lines >= t.limit {
		t.dropped++
		return
	}
	t.lines++
	t.w.WriteString(l)
	t.w.WriteByte('\n')
}

// fmtTime renders simulated time as seconds with microseconds.
func fmtTime(ns int64) string {
	return fmt.Sprintf("%11.6f", float64(ns)/1e9)
}

func fmtDur(ns int64) string {
	if ns < 0 {
		return "?"
	}
	return time.Duration(ns).String()
}

func macName(m fdb.MAC) string {
	if m == broadcast {
		return "broadcast"
	}
	return m.String()
}

// describe summarises a frame: "ARP who-has 10.244.0.3 tell 10.244.0.2".
func describe(f []byte) string {
	if len(f) < ethLen {
		return fmt.Sprintf("runt frame of %d bytes", len(f))
	}
	var b strings.Builder
	et := binary.BigEndian.Uint16(f[12:])
	off := ethLen
	if et == etherVLAN && len(f) >= ethLen+4 {
		fmt.Fprintf(&b, "vlan %d ", binary.BigEndian.Uint16(f[14:])&0xfff)
		et = binary.BigEndian.Uint16(f[16:])
		off += 4
	}
	body := f[off:]
	switch et {
	case etherARP:
		a, ok := parseARP(body)
		switch {
		case !ok:
			b.WriteString("malformed ARP")
		case a.op == arpRequest && a.spa == a.tpa:
			fmt.Fprintf(&b, "ARP announce %v is-at %s", a.spa, a.sha)
		case a.op == arpRequest:
			fmt.Fprintf(&b, "ARP who-has %v tell %v", a.tpa, a.spa)
		case a.op == arpReply:
			fmt.Fprintf(&b, "ARP reply %v is-at %s", a.spa, a.sha)
		default:
			fmt.Fprintf(&b, "ARP op %d", a.op)
		}
	case etherIPv4:
		if len(body) < ipLen {
			b.WriteString("truncated IPv4")
			break
		}
		src, dst := ip4(binary.BigEndian.Uint32(body[12:])), ip4(binary.BigEndian.Uint32(body[16:]))
		p := body[ipLen:]
		switch {
		case body[9] == protoICMP && len(p) >= icmpLen:
			switch p[0] {
			case icmpEcho:
				fmt.Fprintf(&b, "ICMP echo request %v > %v seq %d ttl %d", src, dst, binary.BigEndian.Uint16(p[6:]), body[8])
			case icmpReply:
				fmt.Fprintf(&b, "ICMP echo reply %v > %v seq %d ttl %d", src, dst, binary.BigEndian.Uint16(p[6:]), body[8])
			case icmpTimeEx:
				fmt.Fprintf(&b, "ICMP time exceeded %v > %v", src, dst)
			case icmpUnreach:
				fmt.Fprintf(&b, "ICMP unreachable %v > %v", src, dst)
			default:
				fmt.Fprintf(&b, "ICMP type %d %v > %v", p[0], src, dst)
			}
		case body[9] == protoUDP && len(p) >= udpLen:
			fmt.Fprintf(&b, "UDP %v:%d > %v:%d len %d", src, binary.BigEndian.Uint16(p[0:]), dst, binary.BigEndian.Uint16(p[2:]), binary.BigEndian.Uint16(p[4:])-udpLen)
		default:
			fmt.Fprintf(&b, "IPv4 proto %d %v > %v", body[9], src, dst)
		}
	case etherFlood:
		b.WriteString("flood frame")
	default:
		fmt.Fprintf(&b, "ethertype %#04x", et)
	}
	fmt.Fprintf(&b, " [%s > %s]", fdb.MACFrom(f[6:12]), macName(fdb.MACFrom(f[0:6])))
	return b.String()
}

// traceDecision writes one switch decision: what came in where, what was
// learned, and where it went.
func (s *Sim) traceDecision(n *swNode, in fdb.PortID, f []byte, d vswitch.Decision) {
	var b strings.Builder
	_, port := splitRef(n.portName(in))
	fmt.Fprintf(&b, "%s in %s: %s: ", n.name, port, describe(f))
	var what []string
	switch {
	case d.Dropped:
		what = append(what, "dropped ("+d.Drop.String()+")")
	case d.ARP == arp.Reply:
		what = append(what, "answered by ARP suppression")
	case d.Flooded:
		kind := "flooded"
		if d.Unknown {
			kind = "unknown unicast, flooded"
		}
		what = append(what, fmt.Sprintf("%s to %s", kind, plural(d.Copies, "port")))
	default:
		_, out := splitRef(n.portName(d.Out))
		what = append(what, fmt.Sprintf("forwarded to %s (port %d)", out, d.Out))
	}
	src := fdb.MACFrom(f[6:12])
	switch d.Learn {
	case fdb.Inserted:
		what = append(what, fmt.Sprintf("learned %s on port %d", src, in))
	case fdb.Moved:
		what = append(what, fmt.Sprintf("%s moved to port %d", src, in))
	case fdb.Refused:
		what = append(what, fmt.Sprintf("%s not learned (table limit)", src))
	}
	b.WriteString(strings.Join(what, "; "))
	s.tr.printf(s, "%s", b.String())
}
