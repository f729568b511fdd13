package vswitch

import (
	"encoding/binary"

	"github.com/tapswitch/tapswitch/fdb"
)

// egressQueue gathers a batch's frames per egress port, so that each port
// gets one WriteBatch per input batch (see Ingress.flush).
//
// Invariant: pend[:np] are the ports with frames queued, in the order they
// were first queued, and index[id] is the position in pend of port id's
// queue, -1 for every port without one; last is nil or the queue the last
// frame joined; lastEgress is the egressKey of the unicast that last joined
// last, or noEgress. A flush empties all of it.
type egressQueue struct {
	pend       []pending
	np         int
	index      []int32
	last       *pending
	lastEgress uint64
}

type pending struct {
	p      *port
	frames [][]byte
	bytes  uint64
}

// grow makes room in index for port IDs below n.
func (q *egressQueue) grow(n int) {
	old := len(q.index)
	q.index = append(q.index, make([]int32, n-old)...)
	for i := old; i < n; i++ {
		q.index[i] = -1
	}
}

// queue puts f, whose header is hl bytes, in op's queue.
func (q *egressQueue) queue(op *port, f []byte, hl int) {
	// Frames of a batch mostly go where the previous one went.
	if q.np > 0 && q.last.p == op {
		q.join(f, hl)
		return
	}
	j := q.index[op.id]
	if j < 0 {
		j = int32(q.np)
		if q.np == len(q.pend) {
			// pend grows only here, so last never points into a
			// replaced array: it is reset by every flush first.
			q.pend = append(q.pend, pending{})
		}
		q.pend[j].p = op
		q.index[op.id] = j
		q.np++
	}
	pd := &q.pend[j]
	pd.frames = append(pd.frames, f)
	pd.bytes += uint64(len(f) - hl)
	q.last = pd
	q.lastEgress = noEgress
}

// join queues f, whose header is hl bytes, behind the frames last queued,
// to the same port.
func (q *egressQueue) join(f []byte, hl int) {
	q.last.frames = append(q.last.frames, f)
	q.last.bytes += uint64(len(f) - hl)
}

// egressKey names where a unicast goes and how: its port, its VLAN and
// whether it arrived tagged. Port IDs are never 0 (fdb.PortID), so no key
// is noEgress.
func egressKey(out fdb.PortID, vid uint16, tagged bool) uint64 {
	k := uint64(out)<<13 | uint64(vid)
	if tagged {
		k |= 1 << 12
	}
	return k
}

const noEgress = 0

// send queues f for op, or, when op wants the frame tagged differently than
// it arrived, writes a retagged copy at once.
func (in *Ingress) send(op *port, f []byte, tagged bool, vid uint16) {
	if op.untagged(vid) != tagged {
		in.q.queue(op, f, in.sw.hdrLen)
		return
	}
	// Retagging is for trunks and mixed VLAN set-ups, not the pod-to-pod
	// path: flush first so that op sees frames in arrival order, then write
	// one copy from scratch.
	in.flush()
	g := in.retag(f, tagged, vid)
	in.one[0] = g
	in.write(op, in.one, uint64(len(g)-in.sw.hdrLen))
	in.one[0] = nil
}

// retag copies f into scratch with its VLAN tag pushed or popped.
func (in *Ingress) retag(f []byte, tagged bool, vid uint16) []byte {
	hl := in.sw.hdrLen
	s := in.scratchFor(len(f) + tagLen)
	copy(s, f[:hl+12])
	if tagged { // pop
		n := copy(s[hl+12:], f[hl+16:])
		if hl > 0 {
			shiftVnet(s, -tagLen)
		}
		return s[:hl+12+n]
	}
	binary.BigEndian.PutUint16(s[hl+12:], etherTypeVLAN)
	binary.BigEndian.PutUint16(s[hl+14:], vid)
	n := copy(s[hl+16:], f[hl+12:])
	if hl > 0 {
		shiftVnet(s, tagLen)
	}
	return s[:hl+16+n]
}

// flush publishes the batch's counts, then writes every queued frame, one
// WriteBatch per egress port.
func (in *Ingress) flush() {
	in.publish()
	q := &in.q
	for i := 0; i < q.np; i++ {
		pd := &q.pend[i]
		in.write(pd.p, pd.frames, pd.bytes)
		clear(pd.frames)
		pd.frames = pd.frames[:0]
		pd.bytes = 0
		q.index[pd.p.id] = -1
		pd.p = nil
	}
	q.np = 0
	q.last = nil
	q.lastEgress = noEgress
}

// write hands frames (of bytes Ethernet bytes in all) to p and counts them.
// They are counted as sent before the write: a TAP write delivers into the
// receiving pod's stack at once, and whoever sees the answer must already
// see the frame counted. Frames the port then fails to take are moved from
// the sent count to tx-error drops.
func (in *Ingress) write(p *port, frames [][]byte, bytes uint64) {
	c := &p.c
	c.txFrames.Add(uint64(len(frames)))
	c.txBytes.Add(bytes)
	n, _ := p.p.WriteBatch(frames) // what did not go out is counted below
	if m := p.mirrorOf(); m != nil && n > 0 {
		m.Mirror(Sent, frames[:n])
	}
	if n < len(frames) {
		var b uint64
		for _, f := range frames[n:] {
			b += uint64(len(f) - in.sw.hdrLen)
		}
		c.txFrames.Add(^uint64(len(frames) - n - 1)) // subtract
		c.txBytes.Add(^(b - 1))
		c.drops[DropTxError].Add(uint64(len(frames) - n))
	}
}
