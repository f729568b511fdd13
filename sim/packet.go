package sim

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/tapswitch/tapswitch/fdb"
)

// Frame layout. Hosts write and read these few headers by hand: the frame
// path of a simulation is the hot loop, and every host sees every flood.
const (
	ethLen      = 14
	arpLen      = 28
	ipLen       = 20
	icmpLen     = 8
	udpLen      = 8
	etherIPv4   = 0x0800
	etherARP    = 0x0806
	etherVLAN   = 0x8100
	etherFlood  = 0x88b5 // IEEE local experimental: MAC-flood filler frames
	protoICMP   = 1
	protoUDP    = 17
	arpRequest  = 1
	arpReply    = 2
	icmpReply   = 0
	icmpUnreach = 3
	icmpEcho    = 8
	icmpTimeEx  = 11
	defaultTTL  = 64
)

var broadcast = fdb.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// ip4 is an IPv4 address as a number, the form hosts route with.
type ip4 uint32

func ipOf(a netip.Addr) ip4 {
	b := a.As4()
	return ip4(binary.BigEndian.Uint32(b[:]))
}

func (a ip4) addr() netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(a))
	return netip.AddrFrom4(b)
}

func (a ip4) String() string {
	return fmt.Sprintf("%d.%d.%d.%d", byte(a>>24), byte(a>>16), byte(a>>8), byte(a))
}

func maskOf(bits int) ip4 {
	if bits <= 0 {
		return 0
	}
	return ip4(^uint32(0) << (32 - bits))
}

func putEth(b []byte, dst, src fdb.MAC, etype uint16) {
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	binary.BigEndian.PutUint16(b[12:], etype)
}

// putARP writes an Ethernet/IPv4 ARP body; arp.Build writes the same bytes
// through gopacket (a test checks that they agree).
func putARP(b []byte, op uint16, sha fdb.MAC, spa ip4, tha fdb.MAC, tpa ip4) {
	binary.BigEndian.PutUint16(b[0:], 1) // Ethernet
	binary.BigEndian.PutUint16(b[2:], etherIPv4)
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:], op)
	copy(b[8:14], sha[:])
	binary.BigEndian.PutUint32(b[14:], uint32(spa))
	copy(b[18:24], tha[:])
	binary.BigEndian.PutUint32(b[24:], uint32(tpa))
}

// arpBody is a parsed ARP body.
type arpBody struct {
	op       uint16
	sha, tha fdb.MAC
	spa, tpa ip4
}

func parseARP(b []byte) (arpBody, bool) {
	if len(b) < arpLen || binary.BigEndian.Uint16(b[0:]) != 1 || binary.BigEndian.Uint16(b[2:]) != etherIPv4 || b[4] != 6 || b[5] != 4 {
		return arpBody{}, false
	}
	return arpBody{
		op:  binary.BigEndian.Uint16(b[6:]),
		sha: fdb.MACFrom(b[8:14]), spa: ip4(binary.BigEndian.Uint32(b[14:])),
		tha: fdb.MACFrom(b[18:24]), tpa: ip4(binary.BigEndian.Uint32(b[24:])),
	}, true
}

// putIPv4 writes a 20-byte IPv4 header for a payload of n bytes.
func putIPv4(b []byte, id uint16, ttl, proto uint8, src, dst ip4, n int) {
	b[0], b[1] = 0x45, 0
	binary.BigEndian.PutUint16(b[2:], uint16(ipLen+n))
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], 0x4000) // don't fragment
	b[8], b[9] = ttl, proto
	b[10], b[11] = 0, 0
	binary.BigEndian.PutUint32(b[12:], uint32(src))
	binary.BigEndian.PutUint32(b[16:], uint32(dst))
	binary.BigEndian.PutUint16(b[10:], checksum(b[:ipLen], 0))
}

// checksum is the Internet checksum of b, starting from sum.
func checksum(b []byte, sum uint32) uint16 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// decTTL lowers the TTL of the IPv4 header in b and patches its checksum
// (RFC 1624).
func decTTL(b []byte) {
	old := binary.BigEndian.Uint16(b[8:])
	b[8]--
	nw := binary.BigEndian.Uint16(b[8:])
	sum := uint32(^binary.BigEndian.Uint16(b[10:])) + uint32(^old) + uint32(nw)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(b[10:], ^uint16(sum))
}

// putICMPEcho writes an echo request or reply; the payload (n bytes after
// the 8-byte header) must already be in place.
func putICMPEcho(b []byte, typ uint8, id, seq uint16, n int) {
	b[0], b[1] = typ, 0
	b[2], b[3] = 0, 0
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	binary.BigEndian.PutUint16(b[2:], checksum(b[:icmpLen+n], 0))
}

func putUDP(b []byte, sport, dport uint16, n int) {
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(udpLen+n))
	b[6], b[7] = 0, 0 // no checksum: allowed on IPv4
}
