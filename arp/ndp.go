package arp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/tapswitch/tapswitch/fdb"
)

// IPv6 Neighbor Discovery (RFC 4861): what ARP is for IPv4, carried in
// ICMPv6. The switch hands HandleNDP only IPv6 packets that may be NDP
// (MaybeNDP); everything is parsed by hand, without allocating.

// ICMPv6 types of Neighbor Discovery.
const (
	TypeRouterSolicitation    = 133
	TypeRouterAdvertisement   = 134
	TypeNeighborSolicitation  = 135
	TypeNeighborAdvertisement = 136
	TypeRedirect              = 137
)

// NDP option types carrying a link-layer address.
const (
	optSourceLL = 1
	optTargetLL = 2
)

// NA flags, in NDP.Flags.
const (
	FlagRouter    = 0x80
	FlagSolicited = 0x40
	FlagOverride  = 0x20
)

const (
	ipv6HdrLen  = 40
	protoICMPv6 = 58
	// maxExtHeaders bounds the extension headers walked to find the
	// ICMPv6 header. No real packet has more; a chain longer than this is
	// dropped as malformed rather than passed unjudged, so that NDP cannot
	// hide behind it.
	maxExtHeaders = 8
)

// extHeaders has a bit set for each next-header value that may stand
// between the IPv6 header and an NDP message and is walked past:
// hop-by-hop options (0), routing (43) and destination options (60).
// Linux processes NDP behind any of them (RFC 6980 forbids only
// fragmentation), so a guard that looked at the first next header alone
// could be bypassed (RFC 7113). A Fragment header (44) ends the walk: hosts
// drop fragmented NDP (suppress_frag_ndisc, on by default), so such a
// packet is passed as not NDP.
const extHeaders = 1<<0 | 1<<43 | 1<<60

// MaybeNDP reports whether an IPv6 packet (the bytes after the EtherType)
// may carry NDP and must go to HandleNDP. It costs the switch a length
// check and a compare or two per IPv6 frame: ICMPv6 of an NDP type, or an
// extension header to look behind. Everything else (TCP, UDP, ICMPv6 echo)
// is not NDP.
func MaybeNDP(pkt []byte) bool {
	if len(pkt) <= ipv6HdrLen {
		return false
	}
	nh := pkt[6]
	if nh == protoICMPv6 {
		return pkt[ipv6HdrLen]-TypeRouterSolicitation <= TypeRedirect-TypeRouterSolicitation
	}
	return nh < 64 && extHeaders>>nh&1 != 0
}

// NDP is a decoded Neighbor Discovery message.
type NDP struct {
	Type     uint8
	Src, Dst netip.Addr // the IPv6 header's
	// Target is the NS, NA or redirect target; invalid for RS and RA.
	Target netip.Addr
	// Flags are an NA's R, S and O bits (FlagRouter...).
	Flags uint8
	// LLAddr is the source link-layer address option (RS, NS, RA) or the
	// target link-layer address option (NA, redirect), when HasLLAddr.
	LLAddr    fdb.MAC
	HasLLAddr bool
}

// errNotNDP: an IPv6 packet that is not NDP a host would process; the
// switch forwards it untouched.
var errNotNDP = errors.New("not NDP")

// minLen is the shortest ICMPv6 message of each NDP type (RFC 4861).
var minLen = [5]int{8, 16, 24, 24, 40}

// ParseNDP decodes an IPv6 packet (the bytes after the EtherType) carrying
// an NDP message, and checks it as a receiving host would (RFC 4861 and
// Linux's ndisc): hop limit 255, code 0, the type's minimum length, options
// of non-zero length that fit, link-layer options of an Ethernet address's
// size, a target that is not multicast, a DAD solicitation (source ::)
// sent to a solicited-node group without a source link-layer option, no
// multicast solicited advertisement, router messages from a link-local
// source, and the ICMPv6 checksum, unless offloaded says the receiver will
// not check it (the frame's virtio-net header marks the checksum partial or
// already valid, and the receiving kernel then trusts it). A host drops any
// packet that fails one of these, so the switch must not learn from it.
//
// A packet that is not NDP (other ICMPv6, another protocol, a fragment)
// returns an error for which IsNotNDP is true.
func ParseNDP(pkt []byte, offloaded bool) (NDP, error) {
	var m NDP
	if len(pkt) < ipv6HdrLen {
		return m, fmt.Errorf("ipv6 header of %d bytes", len(pkt))
	}
	if pkt[0]>>4 != 6 {
		return m, fmt.Errorf("ip version %d in an IPv6 frame", pkt[0]>>4)
	}
	plen := int(binary.BigEndian.Uint16(pkt[4:]))
	if ipv6HdrLen+plen > len(pkt) {
		return m, fmt.Errorf("ipv6 payload length %d in %d bytes", plen, len(pkt)-ipv6HdrLen)
	}
	jumbo := plen == 0
	if !jumbo {
		pkt = pkt[:ipv6HdrLen+plen] // Ethernet padding is not payload
	}
	nh, off := pkt[6], ipv6HdrLen
	for i := 0; nh != protoICMPv6; i++ {
		if nh >= 64 || extHeaders>>nh&1 == 0 {
			return m, errNotNDP
		}
		if nh == 0 && i > 0 {
			return m, errors.New("hop-by-hop options header not first")
		}
		if i == maxExtHeaders {
			return m, fmt.Errorf("more than %d extension headers", maxExtHeaders)
		}
		if off+2 > len(pkt) {
			return m, fmt.Errorf("extension header %d truncated", nh)
		}
		next, n := pkt[off], (int(pkt[off+1])+1)*8
		if off+n > len(pkt) {
			return m, fmt.Errorf("extension header %d of %d bytes truncated", nh, n)
		}
		nh, off = next, off+n
	}
	if off >= len(pkt) {
		return m, errors.New("icmpv6 header truncated")
	}
	typ := pkt[off]
	if typ < TypeRouterSolicitation || typ > TypeRedirect {
		return m, errNotNDP
	}
	if jumbo {
		return m, errors.New("ndp in a jumbogram")
	}
	msg := pkt[off:]
	m.Type = typ
	m.Src = netip.AddrFrom16([16]byte(pkt[8:24]))
	m.Dst = netip.AddrFrom16([16]byte(pkt[24:40]))
	if len(msg) < minLen[typ-TypeRouterSolicitation] {
		return m, fmt.Errorf("ndp type %d: %d bytes, want at least %d", typ, len(msg), minLen[typ-TypeRouterSolicitation])
	}
	if pkt[7] != 255 {
		return m, fmt.Errorf("ndp type %d: hop limit %d, want 255", typ, pkt[7])
	}
	if msg[1] != 0 {
		return m, fmt.Errorf("ndp type %d: code %d", typ, msg[1])
	}
	if !offloaded && !checksumOK(pkt[8:40], msg) {
		return m, fmt.Errorf("ndp type %d: bad icmpv6 checksum", typ)
	}
	var opts []byte
	llOpt := uint8(optSourceLL)
	switch typ {
	case TypeRouterSolicitation:
		opts = msg[8:]
	case TypeRouterAdvertisement:
		opts = msg[16:]
	case TypeNeighborSolicitation, TypeNeighborAdvertisement:
		m.Target = netip.AddrFrom16([16]byte(msg[8:24]))
		opts = msg[24:]
		if typ == TypeNeighborAdvertisement {
			m.Flags = msg[4] & (FlagRouter | FlagSolicited | FlagOverride)
			llOpt = optTargetLL
		}
	case TypeRedirect:
		m.Target = netip.AddrFrom16([16]byte(msg[8:24]))
		opts = msg[40:]
		llOpt = optTargetLL
	}
	for len(opts) > 0 {
		if len(opts) < 2 || opts[1] == 0 || int(opts[1])*8 > len(opts) {
			return m, fmt.Errorf("ndp type %d: bad option length", typ)
		}
		n := int(opts[1]) * 8
		if opts[0] == llOpt && !m.HasLLAddr { // the first one counts, as in Linux
			if n != 8 {
				return m, fmt.Errorf("ndp type %d: link-layer address option of %d bytes", typ, n)
			}
			m.LLAddr, m.HasLLAddr = fdb.MACFrom(opts[2:8]), true
		}
		opts = opts[n:]
	}
	if (typ == TypeNeighborSolicitation || typ == TypeNeighborAdvertisement) && m.Target.IsMulticast() {
		return m, fmt.Errorf("ndp type %d: multicast target %v", typ, m.Target)
	}
	switch typ {
	case TypeNeighborSolicitation:
		if m.Src.IsUnspecified() && (!solicitedNode(m.Dst) || m.HasLLAddr) {
			return m, errors.New("ndp: DAD solicitation not to a solicited-node group, or with a link-layer option")
		}
	case TypeNeighborAdvertisement:
		if m.Dst.IsMulticast() && m.Flags&FlagSolicited != 0 {
			return m, errors.New("ndp: solicited advertisement to a multicast group")
		}
	case TypeRouterAdvertisement, TypeRedirect:
		if !m.Src.IsLinkLocalUnicast() {
			return m, fmt.Errorf("ndp type %d: source %v not link-local", typ, m.Src)
		}
	}
	return m, nil
}

// IsNotNDP reports whether ParseNDP's err says the packet is not NDP at all
// (rather than NDP a host would drop).
func IsNotNDP(err error) bool { return err == errNotNDP }

// solicitedNode reports whether a is in ff02::1:ff00:0/104.
func solicitedNode(a netip.Addr) bool {
	b := a.As16()
	return b[0] == 0xff && b[1] == 0x02 && [9]byte(b[2:11]) == [9]byte{} && b[11] == 1 && b[12] == 0xff
}

// checksumOK verifies an ICMPv6 checksum over the pseudo-header (addrs is
// the source and destination, 32 bytes) and msg.
func checksumOK(addrs, msg []byte) bool {
	s := sum16(0, addrs)
	s += uint64(len(msg)) + protoICMPv6
	s = sum16(s, msg)
	return fold(s) == 0xffff
}

func sum16(s uint64, b []byte) uint64 {
	for len(b) >= 4 {
		s += uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	return s
}

func fold(s uint64) uint16 {
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// HandleNDP judges an IPv6 packet (the bytes after the EtherType) that
// arrived on port in vlan from the Ethernet source src, for which MaybeNDP
// was true; offloaded is as for ParseNDP. It never answers in the switch's
// place (suppression is ARP's alone), so its verdicts are Forward, Drop
// (the guard), DropRouter and Malformed.
//
// On a port with addresses bound (a pod: Bind; the gateway and uplinks bind
// none):
//   - a router advertisement or redirect is dropped (DropRouter) unless
//     Config.PodRouterAdvertisements;
//   - with Config.Guard, a message that claims an address (an NA's target;
//     an NS's, RS's or RA's source, unless ::) passes only if the address
//     is bound to the port, or is link-local (fe80::/10, never bound by
//     the control plane) and no other port holds it in the table; and its
//     link-layer option, if any, must be the frame's source MAC. A DAD
//     solicitation (source ::) claims nothing and passes.
//
// NS and NA that pass teach the neighbour table: the NA's target, or the
// NS's source, at the link-layer option's address or else the frame's
// source. A DAD solicitation for a link-local address no other port holds
// teaches it too (see dad).
func (h *Handler) HandleNDP(port fdb.PortID, vlan uint16, src []byte, pkt []byte, offloaded bool, now int64) Verdict {
	m, err := ParseNDP(pkt, offloaded)
	if err == errNotNDP {
		return Forward
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		h.st.NDPMalformed++
		return Malformed
	}
	ips, bound := h.bindings[port]
	if (m.Type == TypeRouterAdvertisement || m.Type == TypeRedirect) && bound && !h.cfg.PodRouterAdvertisements {
		h.st.RAGuardDrops++
		return DropRouter
	}
	var claim netip.Addr
	switch m.Type {
	case TypeNeighborAdvertisement:
		claim = m.Target
	case TypeNeighborSolicitation, TypeRouterSolicitation, TypeRouterAdvertisement:
		if !m.Src.IsUnspecified() {
			claim = m.Src
		}
	}
	if m.Type == TypeNeighborSolicitation && m.Src.IsUnspecified() {
		h.dad(port, vlan, m.Target, fdb.MACFrom(src), now)
		return Forward
	}
	if !claim.IsValid() {
		return Forward
	}
	mac := fdb.MACFrom(src)
	if m.HasLLAddr {
		mac = m.LLAddr
	}
	k := nkey{vlan, claim}
	if h.cfg.Guard && bound {
		_, mine := ips[claim]
		ok := mine
		if !mine && claim.IsLinkLocalUnicast() {
			n := h.neigh[k]
			ok = n == nil || n.Port == port || h.expired(n, now)
		}
		if !ok || mac != fdb.MACFrom(src) {
			h.st.NDPGuardDrops++
			return Drop
		}
	}
	if (m.Type == TypeNeighborSolicitation || m.Type == TypeNeighborAdvertisement) &&
		!claim.IsMulticast() && !mac.IsMulticast() && !mac.IsZero() {
		n := h.neigh[k]
		if n == nil {
			n = &Neighbour{IP: claim}
			h.neigh[k] = n
		}
		n.MAC, n.Port, n.VLAN, n.LastSeen = mac, port, vlan, now
		h.st.NDPSnooped++
	}
	return Forward
}

// dad notes a DAD solicitation for target from port. It claims nothing
// and always passes, but for a link-local target that no other port holds,
// the soliciting host is about to own the address: the table holds it on
// port from now (first come, first served, as RFC 6620 binds addresses), so
// that another pod cannot answer the DAD and take the link-local address
// in the moment the table does not know it yet. Called with h.mu held.
func (h *Handler) dad(port fdb.PortID, vlan uint16, target netip.Addr, mac fdb.MAC, now int64) {
	if !target.IsLinkLocalUnicast() || mac.IsMulticast() || mac.IsZero() {
		return
	}
	k := nkey{vlan, target}
	n := h.neigh[k]
	if n != nil && n.Port != port && !h.expired(n, now) {
		return // held elsewhere: a duplicate, which the holder will answer
	}
	if n == nil {
		n = &Neighbour{IP: target}
		h.neigh[k] = n
	}
	n.MAC, n.Port, n.VLAN, n.LastSeen = mac, port, vlan, now
	h.st.NDPSnooped++
}

// NDPOptions shape a message BuildNDP writes.
type NDPOptions struct {
	HopLimit uint8 // 0: 255
	// RouterLifetime is an RA's, in seconds.
	RouterLifetime uint16
}

// BuildNDP appends an Ethernet-less IPv6 packet carrying m to b: the IPv6
// header, the ICMPv6 message with its checksum, and m.LLAddr as the
// type's link-layer option when m.HasLLAddr. The simulator, tests and
// attack tools use it to speak NDP.
func BuildNDP(b []byte, m NDP, o NDPOptions) ([]byte, error) {
	if m.Type < TypeRouterSolicitation || m.Type > TypeRedirect {
		return b, fmt.Errorf("ndp: type %d is not NDP", m.Type)
	}
	if !m.Src.Is6() || !m.Dst.Is6() {
		return b, fmt.Errorf("ndp: %v -> %v: IPv6 only", m.Src, m.Dst)
	}
	n := minLen[m.Type-TypeRouterSolicitation]
	if m.HasLLAddr {
		n += 8
	}
	start := len(b)
	b = append(b, make([]byte, ipv6HdrLen+n)...)
	p := b[start:]
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(n))
	p[6] = protoICMPv6
	p[7] = o.HopLimit
	if p[7] == 0 {
		p[7] = 255
	}
	s, d := m.Src.As16(), m.Dst.As16()
	copy(p[8:], s[:])
	copy(p[24:], d[:])
	msg := p[ipv6HdrLen:]
	msg[0] = m.Type
	llOpt := byte(optSourceLL)
	switch m.Type {
	case TypeRouterAdvertisement:
		msg[4] = 64 // current hop limit
		binary.BigEndian.PutUint16(msg[6:], o.RouterLifetime)
	case TypeNeighborSolicitation, TypeNeighborAdvertisement, TypeRedirect:
		if m.Target.IsValid() {
			if !m.Target.Is6() {
				return b[:start], fmt.Errorf("ndp: target %v: IPv6 only", m.Target)
			}
			t := m.Target.As16()
			copy(msg[8:], t[:])
		}
		if m.Type == TypeNeighborAdvertisement {
			msg[4] = m.Flags
		}
		if m.Type != TypeNeighborSolicitation {
			llOpt = optTargetLL
		}
		if m.Type == TypeRedirect {
			copy(msg[24:], d[:]) // destination: the redirected one
		}
	}
	if m.HasLLAddr {
		o := msg[len(msg)-8:]
		o[0], o[1] = llOpt, 1
		copy(o[2:], m.LLAddr[:])
	}
	sum := sum16(0, p[8:40]) + uint64(len(msg)) + protoICMPv6
	binary.BigEndian.PutUint16(msg[2:], ^fold(sum16(sum, msg)))
	return b, nil
}

// SolicitedNode is the solicited-node multicast group of a (RFC 4291).
func SolicitedNode(a netip.Addr) netip.Addr {
	b := a.As16()
	return netip.AddrFrom16([16]byte{0xff, 0x02, 10: 0, 11: 1, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]})
}
