package vswitch

import "encoding/binary"

// VnetHdrLen is the size of struct virtio_net_hdr, the header a TAP opened
// with IFF_VNET_HDR puts in front of every frame so that offloaded
// (checksum-pending, GSO) super-frames can cross it whole.
const VnetHdrLen = 10

// virtio_net_hdr fields (include/uapi/linux/virtio_net.h).
const (
	vnetFlagNeedsCsum = 1
	vnetFlagDataValid = 2
	vnetFlagRSCInfo   = 4

	GSONone  = 0
	GSOTCPv4 = 1
	GSOUDP   = 3
	GSOTCPv6 = 4
	GSOUDPL4 = 5
	GSOECN   = 0x80
)

// VnetHdr is a decoded virtio-net header; the switch itself only checks the
// raw bytes and passes them on untouched.
type VnetHdr struct {
	Flags      uint8
	GSOType    uint8
	HdrLen     uint16
	GSOSize    uint16
	CsumStart  uint16
	CsumOffset uint16
}

// DecodeVnetHdr reads the first VnetHdrLen bytes of b.
func DecodeVnetHdr(b []byte) VnetHdr {
	return VnetHdr{
		Flags: b[0], GSOType: b[1],
		HdrLen: binary.LittleEndian.Uint16(b[2:]), GSOSize: binary.LittleEndian.Uint16(b[4:]),
		CsumStart: binary.LittleEndian.Uint16(b[6:]), CsumOffset: binary.LittleEndian.Uint16(b[8:]),
	}
}

// Encode writes h into the first VnetHdrLen bytes of b.
func (h VnetHdr) Encode(b []byte) {
	b[0], b[1] = h.Flags, h.GSOType
	binary.LittleEndian.PutUint16(b[2:], h.HdrLen)
	binary.LittleEndian.PutUint16(b[4:], h.GSOSize)
	binary.LittleEndian.PutUint16(b[6:], h.CsumStart)
	binary.LittleEndian.PutUint16(b[8:], h.CsumOffset)
}

// CheckVnetHdr reports whether the header h in front of an Ethernet frame
// of ethLen bytes is one the receiving kernel would accept
// (virtio_net_hdr_to_skb): a known GSO type with a segment size, and a
// checksum position inside the frame. A TAP reader must not hand the kernel
// on the other side a header that makes it drop the frame, or worse.
func CheckVnetHdr(h []byte, ethLen int) bool {
	flags, gso := h[0], h[1]
	if flags&^(vnetFlagNeedsCsum|vnetFlagDataValid|vnetFlagRSCInfo) != 0 {
		return false
	}
	if flags&vnetFlagNeedsCsum != 0 {
		start := int(binary.LittleEndian.Uint16(h[6:]))
		off := int(binary.LittleEndian.Uint16(h[8:]))
		if start < ethHdrLen || start+off+2 > ethLen {
			return false
		}
	}
	switch gso &^ GSOECN {
	case GSONone:
		return gso&GSOECN == 0
	case GSOTCPv4, GSOTCPv6, GSOUDP, GSOUDPL4:
		if binary.LittleEndian.Uint16(h[4:]) == 0 || flags&vnetFlagNeedsCsum == 0 {
			return false
		}
		return int(binary.LittleEndian.Uint16(h[2:])) <= ethLen
	}
	return false
}

// shiftVnet moves the header's frame offsets by d bytes after a VLAN tag
// was pushed (d = 4) or popped (d = -4) in front of them.
func shiftVnet(h []byte, d int) {
	if h[0]&vnetFlagNeedsCsum != 0 {
		binary.LittleEndian.PutUint16(h[6:], uint16(int(binary.LittleEndian.Uint16(h[6:]))+d))
	}
	if h[1] != GSONone {
		if hl := int(binary.LittleEndian.Uint16(h[2:])); hl != 0 {
			binary.LittleEndian.PutUint16(h[2:], uint16(hl+d))
		}
	}
}
