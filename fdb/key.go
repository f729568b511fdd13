package fdb

import "encoding/binary"

// Key is a (VLAN, MAC) pair as the table stores it, in one word:
//
//	bit 63     live: set in every key, so that the zero Key is no key
//	           and the all-zero MAC on VLAN 0 still differs from an empty slot
//	bit 62     reserved for the slot array (a slot whose entry is moving)
//	bits 48-59 the VLAN ID
//	bits 0-47  the MAC, first byte highest (its group bit is bit 40)
//
// The frame path makes a key once per address and hands it to LearnKey,
// LookupKey and LearnLookup; only this file knows the layout.
type Key uint64

const (
	keyLive   Key = 1 << 63
	keyGroup  Key = 1 << 40 // the I/G bit of the MAC's first byte
	keyMAC    Key = 1<<48 - 1
	vlanShift     = 48
)

// MakeKey packs (vlan, mac) into a Key. mac must hold at least six bytes;
// vlan is taken modulo 4096.
func MakeKey(vlan uint16, mac []byte) Key {
	return MACKey(mac).InVLAN(vlan & MaxVLAN)
}

// MACKey is the key of mac on VLAN 0. The frame path makes its keys before
// it knows the frame's VLAN, checks their MACs, then moves them to the VLAN
// with InVLAN.
func MACKey(mac []byte) Key {
	_ = mac[5]
	return keyLive | Key(binary.BigEndian.Uint16(mac))<<32 | Key(binary.BigEndian.Uint32(mac[2:]))
}

// InVLAN is k, a key on VLAN 0 (from MACKey), moved to vlan, which must be
// at most MaxVLAN (a VLAN the frame path accepted is): one OR, no masking.
func (k Key) InVLAN(vlan uint16) Key {
	return k | Key(vlan)<<vlanShift
}

// VLAN is the key's VLAN ID.
func (k Key) VLAN() uint16 { return uint16(k>>vlanShift) & MaxVLAN }

// MAC is the key's address.
func (k Key) MAC() MAC {
	return MAC{byte(k >> 40), byte(k >> 32), byte(k >> 24), byte(k >> 16), byte(k >> 8), byte(k)}
}

// IsGroup is true for a multicast or broadcast MAC.
func (k Key) IsGroup() bool { return k&keyGroup != 0 }

// IsUnicast is true for a MAC that names one station: not a group address
// and not all-zero. Only such a source is learned.
func (k Key) IsUnicast() bool { return k&keyGroup == 0 && k&keyMAC != 0 }

// live is false for an empty or moving slot's key word.
func (k Key) live() bool { return k&keyLive != 0 }
