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

	// The state of the batch under way (see Receive): what it queued, what
	// the table answered, what it counted.
	q    egressQueue
	memo fdbMemo
	self *port // the ingress port, while a batch is under way
	n    batchCounts

	dec     Decision // the frame's decision, for the tracer
	scratch []byte   // tag push/pop and ARP replies
	one     [][]byte // a batch of one, for frames written from scratch
}

// fdbMemo remembers, within one batch, the last source the table learned
// and the last destination it found. A pod's frames share one source, and a
// TCP flow's share one destination; within a batch (one clock reading) the
// table's answer for a repeated key cannot change but by this batch's own
// learning, so a repeat skips the table.
//
// Invariant: src, when not 0 (never a key), is a source whose learning
// answered srcLearn, Refreshed or Ignored (a static or local entry), neither
// of which changed the table; dst, when not 0, is a destination the table
// placed behind dstPort since the table last changed. Every batch starts
// with both forgotten.
type fdbMemo struct {
	src, dst fdb.Key
	srcLearn fdb.Result
	dstPort  fdb.PortID
}

// learned remembers that learning source key sk answered r. Anything but a
// refresh or an Ignored changed the table, and forgets both memos.
func (m *fdbMemo) learned(sk fdb.Key, r fdb.Result) {
	if r == fdb.Refreshed || r == fdb.Ignored {
		m.src, m.srcLearn = sk, r
	} else {
		m.src, m.dst = 0, 0 // the table changed
	}
}

// found remembers that dk is behind out.
func (m *fdbMemo) found(dk fdb.Key, out fdb.PortID) { m.dst, m.dstPort = dk, out }

// learnedFound is learned(sk, r), then found(dk, out) if ok: what one
// LearnLookup answered.
func (m *fdbMemo) learnedFound(sk fdb.Key, r fdb.Result, dk fdb.Key, out fdb.PortID, ok bool) {
	m.learned(sk, r)
	if ok {
		m.found(dk, out)
	}
}

// source is what learning sk answered, if the memo holds it.
func (m *fdbMemo) source(sk fdb.Key) (fdb.Result, bool) { return m.srcLearn, sk == m.src }

// hit is, for a source the memo holds, what learning it answered and the
// port behind dk, if the memo holds dk too.
func (m *fdbMemo) hit(dk fdb.Key) (fdb.Result, fdb.PortID, bool) {
	return m.srcLearn, m.dstPort, dk == m.dst
}

// batchCounts is what the batch under way has counted on its ingress port
// and not yet published: plain fields, added to the port's shared (atomic)
// counters once per flush rather than per frame.
//
// Invariant: dropped is true whenever some drops[i] is not 0.
type batchCounts struct {
	rxFrames, rxBytes uint64
	drops             [numDropReasons]uint64
	dropped           bool
	flood             uint64 // frames flooded
	unk               uint64 // of which for an unknown destination
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
	if len(in.q.index) < len(set.byID) {
		in.q.grow(len(set.byID))
	}
	if m := self.mirrorOf(); m != nil {
		m.Mirror(Received, frames)
	}
	now := in.sw.clock.Now()
	in.memo = fdbMemo{}
	in.self = self
	// The whole batch counts as received up front, so that a frame flushed
	// in the middle of the batch is counted before it leaves.
	in.n.rxFrames += uint64(len(frames))
	var b int
	for _, f := range frames {
		b += len(f)
	}
	in.n.rxBytes += uint64(b - len(frames)*in.sw.hdrLen)
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
	n, c := &in.n, &in.self.c
	if n.rxFrames != 0 {
		c.rxFrames.Add(n.rxFrames)
		c.rxBytes.Add(n.rxBytes)
		n.rxFrames, n.rxBytes = 0, 0
	}
	if n.flood != 0 {
		c.flooded.Add(n.flood)
		c.unknown.Add(n.unk)
		n.flood, n.unk = 0, 0
	}
	if n.dropped {
		// Most batches drop nothing: skip reading every reason.
		n.dropped = false
		for i, k := range n.drops {
			if k != 0 {
				c.drops[i].Add(k)
				n.drops[i] = 0
			}
		}
	}
}

func (in *Ingress) drop(d *Decision, r DropReason) {
	in.n.drops[r]++
	in.n.dropped = true
	d.Dropped, d.Drop = true, r
}

// forward decides each frame's fate, queues its copies and records what it
// did in in.dec for the tracer (kept in the Ingress: returning it by value
// cost more than the lookup it describes). The loop over the batch is in
// here rather than around a per-frame call, so that the batch's state stays
// in registers across frames: its steps are helpers the compiler inlines,
// and calls only where a frame is rare (snooping) or leaves another way
// than joining the previous one (deliver).
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

		// Admission: the frame is whole, its header sound, its size within
		// the port's, and it is not for a link-local protocol.
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
			// A GSO frame from a TAP may exceed the MTU, up to MaxFrame:
			// the kernel segments it on its way out.
			if f[1] == GSONone && len(eth) > self.maxLen || len(eth) > MaxFrame {
				in.drop(d, DropOversize)
				continue
			}
		} else if len(eth) > self.maxLen {
			in.drop(d, DropOversize)
			continue
		}
		if linkLocal(eth) {
			in.drop(d, DropLinkLocal)
			continue
		}

		// The source: both addresses as fdb keys on VLAN 0 (moved to the
		// frame's VLAN below), one pair of loads each, reused for the
		// source checks, the memo and the table. Port security: a locked
		// port's frames from any other source stop here, before they can
		// teach the FDB, reach the ARP snooper or flood (a MAC flood from a
		// locked pod costs this compare and nothing more); unlocked ports
		// pay one predictable branch.
		srcKey, dstKey := fdb.MACKey(eth[6:12]), fdb.MACKey(eth[0:6])
		if self.lockKey != 0 && srcKey != self.lockKey {
			in.drop(d, DropSrcLock)
			continue
		}
		if !srcKey.IsUnicast() {
			in.drop(d, DropBadSource)
			continue
		}

		// The VLAN.
		vid, tagged, ok := self.vlanOf(eth)
		if !ok {
			in.drop(d, DropBadVLAN)
			continue
		}
		d.VLAN = vid
		etype, off := binary.BigEndian.Uint16(eth[12:]), ethHdrLen
		if tagged {
			etype, off = binary.BigEndian.Uint16(eth[16:]), ethHdrLen+tagLen
		}

		// ARP and NDP are judged before their source is learned: a forged
		// one that the guard drops must not move the victim's MAC (say, the
		// gateway's) to the forger's port on its way to the bin. An IPv6
		// frame that cannot be NDP (TCP, UDP, echo) costs MaybeNDP's
		// compares; IPv4 costs the two EtherType compares.
		if etype == etherTypeARP || etype == etherTypeIPv6 && arp.MaybeNDP(eth[off:]) {
			if r, ok := in.snoop(d, self, f, etype, off, vid, tagged, now); !ok {
				in.drop(d, r)
				continue
			}
		}

		// Learning and the destination, through the memo: a unicast learns
		// and looks up in one table call (one call, one table pointer
		// load, one clock conversion); anything else learns, then floods.
		sk := srcKey.InVLAN(vid)
		if !dstKey.IsGroup() && d.ARP != arp.Reply {
			dk := dstKey.InVLAN(vid)
			var out fdb.PortID
			if sk != in.memo.src {
				d.Learn, out, ok = tbl.LearnLookup(sk, self.id, dk, now)
				in.memo.learnedFound(sk, d.Learn, dk, out, ok)
			} else if d.Learn, out, ok = in.memo.hit(dk); !ok {
				if out, ok = tbl.LookupKey(dk, now); ok {
					in.memo.found(dk, out)
				}
			}
			if ok {
				// A frame for the port and VLAN the previous unicast was
				// queued for, arriving tagged or not as it did, joins it:
				// deliver's checks passed for that one, and nothing they
				// read changes within a batch.
				if eg := egressKey(out, vid, tagged); eg == in.q.lastEgress {
					d.Out, d.Copies = out, 1
					in.q.join(f, hl)
					continue
				}
				if in.deliver(d, set, self, f, out, vid, tagged) {
					continue
				}
			}
			d.Unknown = true
		} else {
			if d.Learn, ok = in.memo.source(sk); !ok {
				d.Learn = tbl.LearnKey(sk, self.id, now)
				in.memo.learned(sk, d.Learn)
			}
			if d.ARP == arp.Reply {
				d.Out, d.Copies = in.id, 1
				continue
			}
		}
		// Flooding, unless storm control holds the port back.
		if self.storm != nil && self.storm.Charge(1, now) != 0 {
			in.drop(d, DropStorm)
			continue
		}
		d.Flooded = true
		in.n.flood++
		if d.Unknown {
			in.n.unk++
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

// linkLocal says eth is for a link-local protocol (01:80:c2:00:00:0x: STP,
// LACP, pause frames), which a bridge must not forward.
func linkLocal(eth []byte) bool {
	return eth[0] == 0x01 && eth[1] == 0x80 && eth[2] == 0xc2 && eth[3] == 0 && eth[4] == 0 && eth[5]&0xf0 == 0
}

// vlanOf is the VLAN a frame arriving on p belongs to and whether it came
// tagged; ok is false when p does not take that VLAN, or the tag is cut
// short. A tag's VLAN ID 0 (priority-tagged) means the PVID; 4095 is
// reserved (and never a PVID).
func (p *port) vlanOf(eth []byte) (vid uint16, tagged, ok bool) {
	vid = p.pvid
	if binary.BigEndian.Uint16(eth[12:]) == etherTypeVLAN {
		if len(eth) < ethHdrLen+tagLen {
			return 0, false, false
		}
		tagged = true
		if v := binary.BigEndian.Uint16(eth[14:]) & 0xfff; v != 0 {
			vid = v
		}
		if vid == fdb.MaxVLAN {
			return 0, false, false
		}
	}
	return vid, tagged, vid != 0 && p.allowed.has(vid)
}

// snoop gives an ARP frame, or an IPv6 frame that may be NDP, to the
// handler, records its verdict in d and says whether the frame goes on, or
// why it is dropped. Kept out of forward's loop, which it would crowd for a
// rare frame.
//
//go:noinline
func (in *Ingress) snoop(d *Decision, self *port, f []byte, etype uint16, off int, vid uint16, tagged bool, now int64) (DropReason, bool) {
	if etype == etherTypeARP {
		d.ARP = in.handleARP(self, f[in.sw.hdrLen:], off, vid, tagged, now)
		switch d.ARP {
		case arp.Drop:
			return DropARPGuard, false
		case arp.Malformed:
			return DropARPMalformed, false
		}
		return 0, true
	}
	d.ARP = in.handleNDP(f, off, vid, now)
	switch d.ARP {
	case arp.Drop:
		return DropNDPGuard, false
	case arp.Malformed:
		return DropNDPMalformed, false
	case arp.DropRouter:
		return DropRAGuard, false
	}
	return 0, true
}

// deliver sends a unicast for port out, which did not join the previous
// one, and records it in d. It is false when out is gone (the frame floods).
func (in *Ingress) deliver(d *Decision, set *portSet, self *port, f []byte, out fdb.PortID, vid uint16, tagged bool) bool {
	op := set.get(out)
	if op == nil {
		return false
	}
	if op == self && !self.hairpin {
		in.drop(d, DropSamePort)
		return true
	}
	d.Out, d.Copies = out, 1
	in.send(op, f, tagged, vid)
	// send either queued f, leaving last at op's queue, or wrote a retagged
	// copy after a flush, which left last nil: the memo is for frames that
	// queue.
	if in.q.last != nil {
		in.q.lastEgress = egressKey(out, vid, tagged)
	}
	return true
}

// scratchFor returns scratch space of at least n bytes. It is allocated on
// first need and grows to the largest frame retagged: most ports never
// retag, and a simulator with thousands of ports cannot afford 64 KiB each.
func (in *Ingress) scratchFor(n int) []byte {
	if len(in.scratch) < n {
		in.scratch = make([]byte, max(n, 2*len(in.scratch), 256))
	}
	return in.scratch
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
