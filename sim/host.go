package sim

import (
	"encoding/binary"

	"github.com/tapswitch/tapswitch/fdb"
)

// host is a simulated pod, node or router with a small IPv4 stack: an ARP
// cache with timeouts and a queue for unresolved next hops, ICMP echo, UDP
// sinks, static routes and a default gateway, and forwarding with TTL for
// routers.
type host struct {
	idx        int32
	name       string
	forward    bool
	ifs        []hostIf
	routes     []route
	gw         ip4
	hasGW      bool
	arpTimeout int64
	cache      []arpEntry
	pend       []pending
	ipID       uint16
	echoFrom   []ip4 // sources of echo requests answered

	ignored, noRoute, ttlExceeded, arpFailed, forwarded, dropped uint64
}

type hostIf struct {
	name  string
	mac   fdb.MAC
	ip    ip4
	mask  ip4
	bits  int8 // -1: no address
	ep    int32
	mtu   int
	moved bool // target of a move: may start unlinked
}

type route struct {
	dst, mask ip4
	bits      int
	via       ip4
}

type arpEntry struct {
	ip     ip4
	ifc    int32
	mac    fdb.MAC
	exp    int64 // 0 with static
	static bool
}

// pending is a next hop being resolved, with the packets that wait for it.
type pending struct {
	ip    ip4
	ifc   int32
	tries int
	q     []int32
}

// ARP resolution, as Linux does by default: three requests a second apart
// (mcast_solicit), a few packets queued meanwhile (unres_qlen), the oldest
// dropped first.
const (
	arpTries    = 3
	arpRetry    = int64(1e9)
	arpQueueLen = 8
)

func (h *host) ifName(i int32) string {
	if len(h.ifs) == 1 {
		return h.name
	}
	return h.name + ":" + h.ifs[i].name
}

// lookupRoute picks the interface and next hop for dst: the longest prefix
// among connected subnets, static routes and the default gateway.
func (h *host) lookupRoute(dst ip4) (ifc int32, nh ip4, ok bool) {
	best := -1
	for i := range h.ifs {
		f := &h.ifs[i]
		if f.bits >= 0 && dst&f.mask == f.ip&f.mask && int(f.bits) > best {
			best, ifc, nh = int(f.bits), int32(i), dst
		}
	}
	for _, r := range h.routes {
		if dst&r.mask == r.dst && r.bits > best {
			if i, ok := h.onLink(r.via); ok {
				best, ifc, nh = r.bits, i, r.via
			}
		}
	}
	if best < 0 && h.hasGW {
		if i, ok := h.onLink(h.gw); ok {
			best, ifc, nh = 0, i, h.gw
		}
	}
	return ifc, nh, best >= 0
}

// onLink finds the interface whose subnet holds ip.
func (h *host) onLink(ip ip4) (int32, bool) {
	best, at := -1, int32(-1)
	for i := range h.ifs {
		f := &h.ifs[i]
		if f.bits >= 0 && ip&f.mask == f.ip&f.mask && int(f.bits) > best {
			best, at = int(f.bits), int32(i)
		}
	}
	return at, at >= 0
}

func (h *host) ownIP(ip ip4) bool {
	for i := range h.ifs {
		if h.ifs[i].bits >= 0 && h.ifs[i].ip == ip {
			return true
		}
	}
	return false
}

func (h *host) firstIP() (ip4, bool) {
	for i := range h.ifs {
		if h.ifs[i].bits >= 0 {
			return h.ifs[i].ip, true
		}
	}
	return 0, false
}

func (h *host) entry(ifc int32, ip ip4) *arpEntry {
	for i := range h.cache {
		if h.cache[i].ip == ip && h.cache[i].ifc == ifc {
			return &h.cache[i]
		}
	}
	return nil
}

func (h *host) findPending(ip ip4) int {
	for i := range h.pend {
		if h.pend[i].ip == ip {
			return i
		}
	}
	return -1
}

// resolved returns the MAC cached for ip on ifc, if still valid.
func (s *Sim) resolved(h *host, ifc int32, ip ip4) (fdb.MAC, bool) {
	e := h.entry(ifc, ip)
	if e == nil || (!e.static && s.now >= e.exp) {
		return fdb.MAC{}, false
	}
	return e.mac, true
}

// output sends the IPv4 packet in buf (Ethernet header still to fill) out of
// ifc to the next hop nh, resolving nh first when needed. It takes buf.
func (s *Sim) output(h *host, ifc int32, nh ip4, buf int32) {
	f := &h.ifs[ifc]
	if mac, ok := s.resolved(h, ifc, nh); ok {
		putEth(s.pool.bytes(buf), mac, f.mac, etherIPv4)
		s.transmit(f.ep, buf)
		return
	}
	if i := h.findPending(nh); i >= 0 {
		p := &h.pend[i]
		if len(p.q) >= arpQueueLen {
			s.pool.put(p.q[0])
			h.arpFailed++
			p.q = append(p.q[:0], p.q[1:]...)
		}
		p.q = append(p.q, buf)
		return
	}
	h.pend = append(h.pend, pending{ip: nh, ifc: ifc, tries: 1, q: []int32{buf}})
	s.sendARP(h, ifc, arpRequest, broadcast, f.mac, f.ip, fdb.MAC{}, nh)
	s.schedule(s.now+arpRetry, evARPRetry, h.idx, uint32(nh), 0)
}

func (s *Sim) arpRetry(h *host, ip ip4) {
	i := h.findPending(ip)
	if i < 0 {
		return
	}
	p := &h.pend[i]
	if p.tries < arpTries {
		p.tries++
		f := &h.ifs[p.ifc]
		s.sendARP(h, p.ifc, arpRequest, broadcast, f.mac, f.ip, fdb.MAC{}, ip)
		s.schedule(s.now+arpRetry, evARPRetry, h.idx, uint32(ip), 0)
		return
	}
	for _, b := range p.q {
		s.pool.put(b)
	}
	h.arpFailed += uint64(len(p.q))
	if s.tr != nil {
		s.tr.printf(s, "%s: ARP for %v failed after %d requests; %d packets dropped", h.name, ip, arpTries, len(p.q))
	}
	h.pend = append(h.pend[:i], h.pend[i+1:]...)
}

// sendARP sends one ARP frame from ifc with the given Ethernet destination.
func (s *Sim) sendARP(h *host, ifc int32, op uint16, dst, sha fdb.MAC, spa ip4, tha fdb.MAC, tpa ip4) {
	buf := s.pool.get(ethLen + arpLen)
	b := s.pool.bytes(buf)
	putEth(b, dst, sha, etherARP)
	putARP(b[ethLen:], op, sha, spa, tha, tpa)
	s.transmit(h.ifs[ifc].ep, buf)
}

// learn records ip -> mac on ifc and sends whatever waited for it.
func (s *Sim) learn(h *host, ifc int32, ip ip4, mac fdb.MAC, create bool) {
	e := h.entry(ifc, ip)
	switch {
	case e != nil && e.static:
		return
	case e != nil:
		if e.mac != mac && s.tr != nil {
			s.tr.printf(s, "%s: ARP cache %v changes %s -> %s", h.name, ip, e.mac, mac)
		}
		e.mac, e.exp = mac, s.now+h.arpTimeout
	case create:
		h.cache = append(h.cache, arpEntry{ip: ip, ifc: ifc, mac: mac, exp: s.now + h.arpTimeout})
		if s.tr != nil {
			s.tr.printf(s, "%s: ARP cache %v is-at %s", h.name, ip, mac)
		}
	default:
		return
	}
	if i := h.findPending(ip); i >= 0 && h.pend[i].ifc == ifc {
		q := h.pend[i].q
		h.pend = append(h.pend[:i], h.pend[i+1:]...)
		f := &h.ifs[ifc]
		for _, b := range q {
			putEth(s.pool.bytes(b), mac, f.mac, etherIPv4)
			s.transmit(f.ep, b)
		}
	}
}

// hostReceive is a frame arriving on interface ifc. It takes buf.
func (s *Sim) hostReceive(h *host, ifc int32, buf int32) {
	b := s.pool.bytes(buf)
	f := &h.ifs[ifc]
	if len(b) < ethLen {
		h.dropped++
		s.pool.put(buf)
		return
	}
	dst := fdb.MACFrom(b[0:6])
	if dst != f.mac && dst != broadcast {
		h.ignored++ // flooded unicast for someone else, or a filler frame
		s.pool.put(buf)
		return
	}
	switch binary.BigEndian.Uint16(b[12:]) {
	case etherARP:
		s.hostARP(h, ifc, b[ethLen:])
	case etherIPv4:
		if s.hostIPv4(h, ifc, buf) {
			return // buf went on
		}
	default:
		h.ignored++
	}
	s.pool.put(buf)
}

func (s *Sim) hostARP(h *host, ifc int32, body []byte) {
	a, ok := parseARP(body)
	if !ok {
		h.dropped++
		return
	}
	f := &h.ifs[ifc]
	forMe := f.bits >= 0 && a.tpa == f.ip
	if a.spa != 0 && a.sha != f.mac {
		// Like Linux: any ARP updates an existing entry for its sender (so
		// a gratuitous ARP moves it, and a forged one poisons it); a request
		// for us or a reply creates one.
		create := (forMe && a.op == arpRequest) || (a.op == arpReply && h.findPending(a.spa) >= 0)
		s.learn(h, ifc, a.spa, a.sha, create)
	}
	if !forMe || a.spa == a.tpa {
		return
	}
	switch a.op {
	case arpRequest:
		s.sendARP(h, ifc, arpReply, a.sha, f.mac, f.ip, a.sha, a.spa)
	case arpReply:
		for _, ap := range s.arpings {
			if ap.host == h.idx && ap.dst == a.spa {
				ap.replies++
			}
		}
	}
}

// hostIPv4 handles an IPv4 packet; it reports whether it kept buf.
func (s *Sim) hostIPv4(h *host, ifc int32, buf int32) bool {
	b := s.pool.bytes(buf)
	ip := b[ethLen:]
	if len(ip) < ipLen || ip[0]>>4 != 4 || int(ip[0]&0xf)*4 != ipLen {
		h.dropped++
		return false
	}
	tot := int(binary.BigEndian.Uint16(ip[2:]))
	if tot < ipLen || tot > len(ip) {
		h.dropped++
		return false
	}
	src, dst := ip4(binary.BigEndian.Uint32(ip[12:])), ip4(binary.BigEndian.Uint32(ip[16:]))
	if !h.ownIP(dst) {
		return s.forward(h, buf, src, dst)
	}
	body := ip[ipLen:tot]
	switch ip[9] {
	case protoICMP:
		return s.hostICMP(h, buf, src, dst, ip[8], body)
	case protoUDP:
		if len(body) >= udpLen+8 {
			s.flowReceive(h, dst, binary.BigEndian.Uint16(body[2:]), body[udpLen:])
		}
	}
	return false
}

func (s *Sim) hostICMP(h *host, buf int32, src, dst ip4, ttl uint8, body []byte) bool {
	if len(body) < icmpLen {
		h.dropped++
		return false
	}
	switch body[0] {
	case icmpEcho:
		ifc, nh, ok := h.lookupRoute(src)
		if !ok {
			h.noRoute++
			return false
		}
		s.noteEchoFrom(h, src)
		b := s.pool.bytes(buf)
		ip := b[ethLen:]
		n := len(body) - icmpLen
		putIPv4(ip, h.nextID(), defaultTTL, protoICMP, dst, src, icmpLen+n)
		putICMPEcho(ip[ipLen:], icmpReply, binary.BigEndian.Uint16(body[4:]), binary.BigEndian.Uint16(body[6:]), n)
		s.pool.bufs[buf] = b[:ethLen+ipLen+icmpLen+n]
		s.output(h, ifc, nh, buf)
		return true
	case icmpReply:
		s.pingReply(h, src, binary.BigEndian.Uint16(body[4:]), binary.BigEndian.Uint16(body[6:]), ttl, body[icmpLen:])
	case icmpTimeEx, icmpUnreach:
		// The quoted packet: its IPv4 header, then the echo's first 8 bytes.
		q := body[icmpLen:]
		if len(q) >= ipLen+icmpLen && q[9] == protoICMP && q[ipLen] == icmpEcho {
			s.pingError(h, src, body[0], binary.BigEndian.Uint16(q[ipLen+4:]), binary.BigEndian.Uint16(q[ipLen+6:]))
		}
	}
	return false
}

func (s *Sim) noteEchoFrom(h *host, src ip4) {
	for _, x := range h.echoFrom {
		if x == src {
			return
		}
	}
	h.echoFrom = append(h.echoFrom, src)
}

func (h *host) nextID() uint16 {
	h.ipID++
	return h.ipID
}

// forward routes a packet for someone else; only routers do. It reports
// whether it kept buf.
func (s *Sim) forward(h *host, buf int32, src, dst ip4) bool {
	if !h.forward {
		h.dropped++
		return false
	}
	b := s.pool.bytes(buf)
	ip := b[ethLen:]
	if ip[8] <= 1 {
		h.ttlExceeded++
		if s.tr != nil {
			s.tr.printf(s, "%s: TTL exceeded for %v -> %v", h.name, src, dst)
		}
		s.icmpError(h, icmpTimeEx, 0, src, ip)
		return false
	}
	ifc, nh, ok := h.lookupRoute(dst)
	if !ok {
		h.noRoute++
		if s.tr != nil {
			s.tr.printf(s, "%s: no route to %v", h.name, dst)
		}
		s.icmpError(h, icmpUnreach, 0, src, ip)
		return false
	}
	decTTL(ip)
	h.forwarded++
	if s.tr != nil {
		s.tr.printf(s, "%s: routes %v -> %v via %s to %v, ttl %d", h.name, src, dst, h.ifs[ifc].name, nh, ip[8])
	}
	s.output(h, ifc, nh, buf)
	return true
}

// icmpError sends an ICMP error about the packet orig back to src.
func (s *Sim) icmpError(h *host, typ, code uint8, src ip4, orig []byte) {
	ifc, nh, ok := h.lookupRoute(src)
	if !ok || h.ifs[ifc].bits < 0 {
		return
	}
	quote := min(len(orig), ipLen+8)
	n := icmpLen + quote
	buf := s.pool.get(ethLen + ipLen + n)
	b := s.pool.bytes(buf)
	ip := b[ethLen:]
	putIPv4(ip, h.nextID(), defaultTTL, protoICMP, h.ifs[ifc].ip, src, n)
	ic := ip[ipLen:]
	ic[0], ic[1] = typ, code
	clear(ic[2:icmpLen])
	copy(ic[icmpLen:], orig[:quote])
	binary.BigEndian.PutUint16(ic[2:], checksum(ic[:n], 0))
	s.output(h, ifc, nh, buf)
}

// sendIP builds an IPv4 packet of proto to dst with a payload of n bytes
// and returns its buffer (Ethernet header to fill), the interface and next
// hop; ok is false when there is no route.
func (s *Sim) sendIP(h *host, dst ip4, proto, ttl uint8, n int) (buf int32, ifc int32, nh ip4, ok bool) {
	ifc, nh, ok = h.lookupRoute(dst)
	if !ok {
		h.noRoute++
		return -1, 0, 0, false
	}
	buf = s.pool.get(ethLen + ipLen + n)
	putIPv4(s.pool.bytes(buf)[ethLen:], h.nextID(), ttl, proto, h.ifs[ifc].ip, dst, n)
	return buf, ifc, nh, true
}

// fill writes a deterministic pattern: pooled buffers hold old frames, and
// captures must be byte-identical run to run.
func fill(b []byte) {
	for len(b) > 0 {
		b = b[copy(b, pattern[:]):]
	}
}

var pattern = func() (p [256]byte) {
	for i := range p {
		p[i] = byte(i)
	}
	return p
}()

func (s *Sim) macOf(h int32, ifc int32) fdb.MAC { return s.hosts[h].ifs[ifc].mac }
