package sim

import (
	"encoding/binary"

	"github.com/tapswitch/tapswitch/fdb"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

// endpoint is one end of a link: a host interface or a switch port.
type endpoint struct {
	link     int32 // -1: unplugged
	side     uint8 // 0: the link's a end, 1: b
	host     int32 // -1 for a switch port
	ifc      int32
	sw       int32 // -1 for a host interface
	port     fdb.PortID
	portName string // "cbr0:pod1" or "pod1" / "router:eth1"
	ing      *vswitch.Ingress
	islot    int32
	capture  int32                     // per-port capture, -1: none
	rxGap    int64                     // a switch port's rx_pps as the gap between frames it takes in; 0: none
	frames   [2]uint64                 // rx, tx
	typed    *[2][numFrameTypes]uint64 // by type, only for ports an assertion counts
}

// countFrame counts f in direction dir.
func (ep *endpoint) countFrame(dir int, f []byte) {
	ep.frames[dir]++
	if ep.typed != nil {
		count(&ep.typed[dir], f)
	}
}

const (
	rx = 0
	tx = 1
)

// Frame types the frames assertion counts by.
const (
	ftAll = iota
	ftBroadcast
	ftUnicast
	ftARP
	ftARPRequest
	ftARPReply
	ftICMP
	ftUDP
	numFrameTypes
)

var frameTypeNames = [numFrameTypes]string{"all", "broadcast", "unicast", "arp", "arp-request", "arp-reply", "icmp", "udp"}

func frameTypeIndex(s string) int {
	for i, n := range frameTypeNames {
		if n == s {
			return i
		}
	}
	return -1
}

// count adds one frame to c by its types.
func count(c *[numFrameTypes]uint64, f []byte) {
	c[ftAll]++
	if len(f) < ethLen {
		return
	}
	if f[0]&1 != 0 {
		if f[0]&f[1]&f[2]&f[3]&f[4]&f[5] == 0xff {
			c[ftBroadcast]++
		}
	} else {
		c[ftUnicast]++
	}
	off := 12
	et := binary.BigEndian.Uint16(f[off:])
	if et == etherVLAN && len(f) >= ethLen+4 {
		off += 4
		et = binary.BigEndian.Uint16(f[off:])
	}
	switch et {
	case etherARP:
		c[ftARP]++
		if len(f) >= off+2+8 {
			switch binary.BigEndian.Uint16(f[off+2+6:]) {
			case arpRequest:
				c[ftARPRequest]++
			case arpReply:
				c[ftARPReply]++
			}
		}
	case etherIPv4:
		if len(f) >= off+2+ipLen {
			switch f[off+2+9] {
			case protoICMP:
				c[ftICMP]++
			case protoUDP:
				c[ftUDP]++
			}
		}
	}
}

// link is a cable: latency, serialisation at a bandwidth, a tail-drop queue
// and seeded random loss, per direction.
type link struct {
	idx     int32
	name    string
	latency int64
	bps     int64
	loss    float64
	queue   int
	ends    [2]int32 // endpoints; -1: nothing plugged in
	up      bool
	epoch   uint32 // changes when the link goes down or is rewired
	dirs    [2]linkDir
	capture int32 // per-link capture, -1: none

	delivered, lost, queueDrops, downDrops uint64
	txBytes                                [2]uint64 // sent from side a, from side b
}

type linkDir struct {
	busy int64   // when the transmitter is free
	fin  []int64 // finish times of frames queued or being sent
	head int
}

// backlog drops finished frames and returns how many are still queued.
func (d *linkDir) backlog(now int64) int {
	for d.head < len(d.fin) && d.fin[d.head] <= now {
		d.head++
	}
	if d.head == len(d.fin) {
		d.fin, d.head = d.fin[:0], 0
	} else if d.head > 64 && d.head > len(d.fin)/2 {
		n := copy(d.fin, d.fin[d.head:])
		d.fin, d.head = d.fin[:n], 0
	}
	return len(d.fin) - d.head
}

func (s *Sim) newEpoch() uint32 {
	s.epochs++
	return s.epochs
}

// transmit puts the frame in buf on from's link, taking ownership of buf.
// It reports false when the link refused it (down, unplugged or queue
// full); a frame lost at random counts as sent.
func (s *Sim) transmit(from int32, buf int32) bool {
	ep := &s.eps[from]
	if ep.link < 0 {
		s.pool.put(buf)
		return false
	}
	l := s.links[ep.link]
	peer := l.ends[1-ep.side]
	if !l.up || peer < 0 {
		l.downDrops++
		if s.tr != nil {
			s.tr.printf(s, "link %s: down, %s drops %s", l.name, ep.portName, describe(s.pool.bytes(buf)))
		}
		s.pool.put(buf)
		return false
	}
	f := s.pool.bytes(buf)
	at := s.now
	if bps, gap := l.bps, s.eps[peer].rxGap; bps > 0 || gap > 0 {
		d := &l.dirs[ep.side]
		if l.queue > 0 && d.backlog(s.now) >= l.queue {
			l.queueDrops++
			if s.tr != nil {
				s.tr.printf(s, "link %s: queue full (%d frames), %s tail-drops %s", l.name, l.queue, ep.portName, describe(f))
			}
			s.pool.put(buf)
			return false
		}
		start := max(s.now, d.busy)
		var ser int64
		if bps > 0 {
			ser = int64(len(f)) * 8_000_000_000 / bps
		}
		// A policed port takes a frame at most every gap: the rest wait on
		// the wire's queue, as they wait in a TAP the daemon does not read.
		d.busy = start + max(ser, gap)
		if l.queue > 0 {
			d.fin = append(d.fin, d.busy)
		}
		at = d.busy
	}
	ep.countFrame(tx, f)
	l.txBytes[ep.side] += uint64(len(f))
	if ep.capture >= 0 {
		s.capture(ep.capture, s.now, f)
	}
	if l.loss > 0 && s.rng.Float64() < l.loss {
		l.lost++
		if s.tr != nil {
			s.tr.printf(s, "link %s: lost %s from %s", l.name, describe(f), ep.portName)
		}
		s.pool.put(buf)
		return true
	}
	s.schedule(at+l.latency, evDeliver, peer, l.epoch, buf)
	return true
}

// deliver hands a frame that crossed a link to the endpoint at its end.
func (s *Sim) deliver(ev *event) {
	e := ev.a
	ep := &s.eps[e]
	if ep.link < 0 || s.links[ep.link].epoch != ev.b {
		// The link went down or was rewired while the frame was on it.
		if ep.link >= 0 {
			s.links[ep.link].downDrops++
		}
		s.pool.put(ev.buf)
		return
	}
	l := s.links[ep.link]
	l.delivered++
	s.delivered++
	f := s.pool.bytes(ev.buf)
	ep.countFrame(rx, f)
	if l.capture >= 0 {
		s.capture(l.capture, s.now, f)
	}
	if ep.capture >= 0 {
		s.capture(ep.capture, s.now, f)
	}
	if ep.host >= 0 {
		s.hostReceive(s.hosts[ep.host], ep.ifc, ev.buf)
		return
	}
	if in := s.ingress(e); in != nil {
		s.one[0] = f
		in.Receive(s.one)
		s.one[0] = nil
	}
	s.pool.put(ev.buf)
}

// unplug takes endpoint e off its link.
func (s *Sim) unplug(e int32) {
	ep := &s.eps[e]
	if ep.link < 0 {
		return
	}
	l := s.links[ep.link]
	l.ends[ep.side] = -1
	l.epoch = s.newEpoch()
	l.dirs = [2]linkDir{}
	ep.link = -1
}

// plug attaches endpoint e to side of l.
func (s *Sim) plug(e int32, l *link, side uint8) {
	l.ends[side] = e
	l.epoch = s.newEpoch()
	l.dirs = [2]linkDir{}
	s.eps[e].link, s.eps[e].side = l.idx, side
}
