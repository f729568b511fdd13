package vswitch

import (
	"encoding/binary"
	"fmt"

	"github.com/tapswitch/tapswitch/arp"
	"github.com/tapswitch/tapswitch/fdb"
)

const (
	etherTypeVLAN = 0x8100
	etherTypeARP  = 0x0806
	etherTypeIPv6 = 0x86dd
)

// Ingress forwards the frames that arrive on one port. Each reader goroutine
// (one per TAP queue) owns one: it holds the scratch space that makes the
// frame path allocation-free, so it must not be shared between goroutines.
type Ingress struct {
	sw *Switch
	id fdb.PortID

	// Frames are gathered per egress port and written with one WriteBatch
	// per port at the end of each input batch.
	pend  []pending
	np    int
	index []int32 // port ID -> position in pend, -1 when absent
	last  *pending
	// lastEgress is egressKey of the unicast last queued to last, or
	// noEgress.
	lastEgress uint64

	// What the current batch has counted and not yet published (publish),
	// on the port it arrived on.
	self              *port
	rxFrames, rxBytes uint64
	drops             [numDropReasons]uint64
	dropped           bool // some drops[i] is not 0
	flood             uint64
	unk               uint64

	dec Decision
	// Per-batch memo of the last source learned and destination looked up,
	// and what learning the source answered: Refreshed, or Ignored for a
	// static or local entry (neither changes the table).
	srcMemo, dstMemo uint64
	srcLearn         fdb.Result
	dstPort          fdb.PortID
	scratch          []byte   // tag push/pop and ARP replies
	one              [][]byte // a batch of one, for frames written from scratch
}

type pending struct {
	p      *port
	frames [][]byte
	bytes  uint64
}

// Ingress returns a forwarder for frames arriving on port id.
func (sw *Switch) Ingress(id fdb.PortID) (*Ingress, error) {
	if sw.ports.Load().get(id) == nil {
		return nil, fmt.Errorf("switch %q: no port %d", sw.name, id)
	}
	return &Ingress{sw: sw, id: id, one: make([][]byte, 1)}, nil
}

// Receive forwards a batch of frames that arrived on the Ingress's port.
// Each frame starts with the switch's header. The frames are only read, and
// not kept after Receive returns.
func (in *Ingress) Receive(frames [][]byte) {
	set := in.sw.ports.Load()
	self := set.get(in.id)
	if self == nil || self.removed.Load() {
		if self != nil {
			self.c.drops[DropNoPort].Add(uint64(len(frames)))
		}
		return
	}
	if len(in.index) < len(set.byID) {
		in.grow(len(set.byID))
	}
	if m := self.mirrorOf(); m != nil {
		m.Mirror(Received, frames)
	}
	now := in.sw.clock.Now()
	in.srcMemo, in.dstMemo = 0, 0
	in.self = self
	// The whole batch counts as received up front, so that a frame flushed
	// in the middle of the batch is counted before it leaves. These are
	// the Ingress's own plain fields; publish adds them to the port's
	// shared (atomic) counters once per flush, not per frame.
	in.rxFrames += uint64(len(frames))
	var b int
	for _, f := range frames {
		b += len(f)
	}
	in.rxBytes += uint64(b - len(frames)*in.sw.hdrLen)
	in.forward(set, self, frames, now)
	in.flush()
	in.self = nil
}

// publish adds what this batch has counted so far to the ingress port's
// counters. flush calls it before any frame leaves, so whoever sees a frame
// delivered (or the answer to it) also sees it counted, including frames
// written in the middle of a batch (retagged copies, ARP replies). flush
// runs only within Receive, while in.self is the batch's port.
func (in *Ingress) publish() {
	// Receive counts a batch's frames as received before forwarding any,
	// so a flush in mid-batch publishes them all and the rest of the
	// batch has only flood and drop counts to publish.
	c := &in.self.c
	if in.rxFrames != 0 {
		c.rxFrames.Add(in.rxFrames)
		c.rxBytes.Add(in.rxBytes)
		in.rxFrames, in.rxBytes = 0, 0
	}
	if in.flood != 0 {
		c.flooded.Add(in.flood)
		c.unknown.Add(in.unk)
		in.flood, in.unk = 0, 0
	}
	if in.dropped {
		// Most batches drop nothing: skip reading every reason.
		in.dropped = false
		for i, n := range in.drops {
			if n != 0 {
				c.drops[i].Add(n)
				in.drops[i] = 0
			}
		}
	}
}

func (in *Ingress) grow(n int) {
	old := len(in.index)
	in.index = append(in.index, make([]int32, n-old)...)
	for i := old; i < n; i++ {
		in.index[i] = -1
	}
}

func (in *Ingress) drop(d *Decision, r DropReason) {
	in.drops[r]++
	in.dropped = true
	d.Dropped, d.Drop = true, r
}

// forward decides each frame's fate, queues its copies and records what it
// did in in.dec for the tracer (kept in the Ingress: returning it by value
// cost more than the lookup it describes). The loop over the batch is in
// here rather than around a per-frame call: the call, and spilling and
// reloading the batch's state around it, cost as much as the lookup.
func (in *Ingress) forward(set *portSet, self *port, frames [][]byte, now int64) {
	d := &in.dec
	hl := in.sw.hdrLen
	tr := in.sw.tracer
	tbl := in.sw.fdb
	for i := 0; ; i++ {
		// The tracer hears each frame's decision once it is made: at the
		// top of the next turn, so that every exit below is a plain
		// continue.
		if tr != nil && i > 0 {
			tr.Frame(in.id, frames[i-1], *d)
		}
		if i == len(frames) {
			return
		}
		f := frames[i]
		*d = Decision{}
		if len(f) < hl+ethHdrLen {
			in.drop(d, DropRunt)
			continue
		}
		eth := f[hl:]
		if hl > 0 {
			if !CheckVnetHdr(f, len(eth)) {
				in.drop(d, DropBadVnetHdr)
				continue
			}
			if f[1] == GSONone && len(eth) > self.maxLen {
				in.drop(d, DropOversize)
				continue
			}
			if len(eth) > MaxFrame {
				in.drop(d, DropOversize)
				continue
			}
		} else if len(eth) > self.maxLen {
			in.drop(d, DropOversize)
			continue
		}
		dst, src := eth[0:6], eth[6:12]
		if dst[0] == 0x01 && dst[1] == 0x80 && dst[2] == 0xc2 && dst[3] == 0 && dst[4] == 0 && dst[5]&0xf0 == 0 {
			in.drop(d, DropLinkLocal)
			continue
		}
		// Both addresses as FDB keys (VLAN 0 for now, set below): one pair of
		// loads each, reused for the source check, the memo and the table.
		srcKey, dstKey := fdb.Key(0, src), fdb.Key(0, dst)
		// Port security: a locked port's frames from any other source stop
		// here, before they can teach the FDB, reach the ARP snooper or flood
		// (a MAC flood from a locked pod costs this compare and nothing more).
		// Unlocked ports pay one predictable branch.
		if self.lockKey != 0 && srcKey != self.lockKey {
			in.drop(d, DropSrcLock)
			continue
		}
		if srcKey&macGroup != 0 || srcKey&macBits == 0 {
			in.drop(d, DropBadSource)
			continue
		}

		etype := binary.BigEndian.Uint16(eth[12:])
		tagged := etype == etherTypeVLAN
		off := ethHdrLen
		var vid uint16
		if tagged {
			if len(eth) < ethHdrLen+tagLen {
				in.drop(d, DropBadVLAN)
				continue
			}
			vid = binary.BigEndian.Uint16(eth[14:]) & 0xfff
			etype = binary.BigEndian.Uint16(eth[16:])
			off += tagLen
			if vid == 0 { // priority-tagged: the frame belongs to the PVID
				vid = self.pvid
			}
			if vid == fdb.MaxVLAN {
				in.drop(d, DropBadVLAN)
				continue
			}
		} else {
			vid = self.pvid
		}
		if vid == 0 || !self.allowed.has(vid) {
			in.drop(d, DropBadVLAN)
			continue
		}
		d.VLAN = vid

		// ARP and NDP are judged before their source is learned: a forged
		// one that the guard drops must not move the victim's MAC (say, the
		// gateway's) to the forger's port on its way to the bin. An IPv6
		// frame that cannot be NDP (TCP, UDP, echo) costs MaybeNDP's
		// compares; IPv4 costs the two EtherType compares.
		if etype == etherTypeARP {
			d.ARP = in.handleARP(self, eth, off, vid, tagged, now)
			switch d.ARP {
			case arp.Drop:
				in.drop(d, DropARPGuard)
				continue
			case arp.Malformed:
				in.drop(d, DropARPMalformed)
				continue
			}
		} else if etype == etherTypeIPv6 && arp.MaybeNDP(eth[off:]) {
			d.ARP = in.handleNDP(f, off, vid, now)
			switch d.ARP {
			case arp.Drop:
				in.drop(d, DropNDPGuard)
				continue
			case arp.Malformed:
				in.drop(d, DropNDPMalformed)
				continue
			case arp.DropRouter:
				in.drop(d, DropRAGuard)
				continue
			}
		}

		// A pod's frames share one source, and a TCP flow's share one
		// destination: within a batch (one clock reading) the FDB's answer for
		// a repeated (VLAN, MAC) cannot change but by our own learning, so
		// remember the last of each and skip the table. memo keys carry the VLAN
		// above the MAC and bit 63 as "valid".
		vlanBits := uint64(vid) << 48
		sk := srcKey | vlanBits
		if dstKey&macGroup == 0 && d.ARP != arp.Reply {
			// A unicast: learn and look up in one table call (one call,
			// one table pointer load, one clock conversion).
			dk := dstKey | vlanBits
			var out fdb.PortID
			var ok bool
			if sk != in.srcMemo {
				d.Learn, out, ok = tbl.LearnLookup(sk, self.id, dk, now)
				in.memoSrc(sk, d.Learn)
				if ok {
					in.dstMemo, in.dstPort = dk, out
				}
			} else {
				d.Learn = in.srcLearn
				out, ok = in.dstPort, true
				if dk != in.dstMemo {
					if out, ok = tbl.LookupKey(dk, now); ok {
						in.dstMemo, in.dstPort = dk, out
					}
				}
			}
			if ok {
				// A frame for the port and VLAN the previous unicast was
				// queued for, arriving tagged or not as it did, joins it:
				// the checks below passed for it, and nothing they read
				// changes within a batch.
				if eg := egressKey(out, vid, tagged); eg == in.lastEgress {
					d.Out, d.Copies = out, 1
					in.join(f, hl)
					continue
				} else if op := set.get(out); op != nil {
					if op == self && !self.hairpin {
						in.drop(d, DropSamePort)
						continue
					}
					d.Out, d.Copies = out, 1
					in.send(op, f, tagged, vid)
					// send either queued f, leaving last at op's queue, or
					// wrote a retagged copy after a flush, which left last
					// nil: the memo is for frames that queue.
					if in.last != nil {
						in.lastEgress = eg
					}
					continue
				}
			}
			d.Unknown = true
		} else {
			if sk == in.srcMemo {
				d.Learn = in.srcLearn
			} else {
				d.Learn = tbl.LearnKey(sk, self.id, now)
				in.memoSrc(sk, d.Learn)
			}
			if d.ARP == arp.Reply {
				d.Out, d.Copies = in.id, 1
				continue
			}
		}
		if self.storm != nil && !self.storm.allow(now) {
			in.drop(d, DropStorm)
			continue
		}
		d.Flooded = true
		in.flood++
		if d.Unknown {
			in.unk++
		}
		for _, op := range set.members[vid] {
			if op == self && !self.hairpin {
				continue
			}
			in.send(op, f, tagged, vid)
			d.Copies++
		}
	}
}

// memoSrc remembers learning source key sk answered r. A refresh, or a
// static or local entry's Ignored, changed nothing: the next frame from sk
// gets the same answer without the table. Anything else changed the table,
// and forgets both memos.
func (in *Ingress) memoSrc(sk uint64, r fdb.Result) {
	if r == fdb.Refreshed || r == fdb.Ignored {
		in.srcMemo, in.srcLearn = sk, r
	} else {
		in.srcMemo, in.dstMemo = 0, 0 // the table changed
	}
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

// scratchFor returns scratch space of at least n bytes. It is allocated on
// first need and grows to the largest frame retagged: most ports never
// retag, and a simulator with thousands of ports cannot afford 64 KiB each.
func (in *Ingress) scratchFor(n int) []byte {
	if len(in.scratch) < n {
		in.scratch = make([]byte, max(n, 2*len(in.scratch), 256))
	}
	return in.scratch
}

// Bits of an fdb.Key: the MAC's group bit, and the whole MAC.
const (
	macGroup = 1 << 40
	macBits  = 1<<48 - 1
)

// send queues f for op, or, when op wants the frame tagged differently than
// it arrived, writes a retagged copy at once.
func (in *Ingress) send(op *port, f []byte, tagged bool, vid uint16) {
	if op.untagged(vid) != tagged {
		in.queue(op, f)
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

func (in *Ingress) queue(op *port, f []byte) {
	// Frames of a batch mostly go where the previous one went.
	if in.np > 0 && in.last.p == op {
		in.join(f, in.sw.hdrLen)
		return
	}
	j := in.index[op.id]
	if j < 0 {
		j = int32(in.np)
		if in.np == len(in.pend) {
			// pend grows only here, so last never points into a
			// replaced array: it is reset by every flush first.
			in.pend = append(in.pend, pending{})
		}
		in.pend[j].p = op
		in.index[op.id] = j
		in.np++
	}
	pd := &in.pend[j]
	pd.frames = append(pd.frames, f)
	pd.bytes += uint64(len(f) - in.sw.hdrLen)
	in.last = pd
	in.lastEgress = noEgress
}

// join queues f, whose header is hl bytes, behind the frames last queued,
// to the same port.
func (in *Ingress) join(f []byte, hl int) {
	in.last.frames = append(in.last.frames, f)
	in.last.bytes += uint64(len(f) - hl)
}

// flush writes every queued frame, one WriteBatch per egress port.
func (in *Ingress) flush() {
	in.publish()
	for i := 0; i < in.np; i++ {
		pd := &in.pend[i]
		in.write(pd.p, pd.frames, pd.bytes)
		clear(pd.frames)
		pd.frames = pd.frames[:0]
		pd.bytes = 0
		in.index[pd.p.id] = -1
		pd.p = nil
	}
	in.np = 0
	in.last = nil
	in.lastEgress = noEgress
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

// handleNDP gives an IPv6 frame that may be NDP (f, header included, with
// its IPv6 header off bytes into the Ethernet frame) to the handler. Kept
// out of forward's loop, which it would crowd for a rare frame.
//
//go:noinline
func (in *Ingress) handleNDP(f []byte, off int, vid uint16, now int64) arp.Verdict {
	hl := in.sw.hdrLen
	// The receiving kernel does not check a checksum the frame's
	// virtio-net header marks partial or valid, so neither may the
	// handler.
	offloaded := hl > 0 && f[0]&(vnetFlagNeedsCsum|vnetFlagDataValid) != 0
	return in.sw.arp.HandleNDP(in.id, vid, f[hl+6:hl+12], f[hl+off:], offloaded, now)
}

// handleARP gives an ARP frame to the handler and, when it answers on the
// switch's behalf, sends the reply back out the ingress port.
func (in *Ingress) handleARP(self *port, eth []byte, off int, vid uint16, tagged bool, now int64) arp.Verdict {
	hl := in.sw.hdrLen
	s := in.scratchFor(hl + ethHdrLen + tagLen + arp.BodyLen)
	// Build the reply in place: header, Ethernet (+tag), then the ARP body
	// that Handle writes.
	bodyAt := hl + off
	v, from := in.sw.arp.Handle(in.id, vid, eth[6:12], eth[off:], now, s[bodyAt:bodyAt+arp.BodyLen])
	if v != arp.Reply {
		return v
	}
	clear(s[:hl])
	copy(s[hl:], eth[6:12]) // to the requester
	copy(s[hl+6:], from[:])
	if tagged {
		binary.BigEndian.PutUint16(s[hl+12:], etherTypeVLAN)
		binary.BigEndian.PutUint16(s[hl+14:], binary.BigEndian.Uint16(eth[14:]))
		binary.BigEndian.PutUint16(s[hl+16:], etherTypeARP)
	} else {
		binary.BigEndian.PutUint16(s[hl+12:], etherTypeARP)
	}
	frame := s[:bodyAt+arp.BodyLen]
	in.flush()
	in.one[0] = frame
	in.write(self, in.one, uint64(len(frame)-hl))
	in.one[0] = nil
	return v
}
