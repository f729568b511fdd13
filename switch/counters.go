package vswitch

import "sync/atomic"

// DropReason says why the switch did not forward a frame.
type DropReason uint8

const (
	DropRunt         DropReason = iota // shorter than an Ethernet header
	DropOversize                       // longer than the port's MTU allows, and not GSO
	DropBadVnetHdr                     // virtio-net header the kernel would reject
	DropBadVLAN                        // truncated tag, or a VLAN the port does not carry
	DropLinkLocal                      // 01:80:C2:00:00:0X, never forwarded by a bridge
	DropBadSource                      // multicast or all-zero source MAC
	DropSrcLock                        // source MAC other than the port's LockMAC (port security)
	DropARPGuard                       // ARP claiming an address not bound to the port
	DropARPMalformed                   // EtherType ARP with a body that does not parse
	DropNDPGuard                       // IPv6 neighbour discovery claiming an address not bound to the port
	DropNDPMalformed                   // NDP no host would accept (checksum, hop limit, length), or IPv6 extension headers cut short or over 8
	DropRAGuard                        // router advertisement or redirect from a pod's port (not allowed)
	DropSamePort                       // destination is behind the ingress port (hairpin off)
	DropStorm                          // over the port's broadcast/multicast/unknown-unicast rate
	DropNoPort                         // arrived on a port being removed
	DropTxError                        // the egress port failed to take it
	numDropReasons
)

var dropNames = [numDropReasons]string{
	"runt", "oversize", "bad-vnet-hdr", "bad-vlan", "link-local", "bad-source",
	"src-lock", "arp-guard", "arp-malformed", "ndp-guard", "ndp-malformed", "ra-guard", "same-port", "storm", "no-port", "tx-error",
}

func (d DropReason) String() string {
	if d < numDropReasons {
		return dropNames[d]
	}
	return "unknown"
}

// DropReasons lists every reason, for metrics and tables.
func DropReasons() []DropReason {
	out := make([]DropReason, numDropReasons)
	for i := range out {
		out[i] = DropReason(i)
	}
	return out
}

// Counters are one port's totals. Bytes count Ethernet frames, not the
// virtio-net header. The JSON form is the simulator's, as PortInfo's.
type Counters struct {
	RxFrames uint64 `json:"rx_frames"`
	RxBytes  uint64 `json:"rx_bytes"`
	TxFrames uint64 `json:"tx_frames"`
	TxBytes  uint64 `json:"tx_bytes"`
	// Flooded counts frames received on this port that went to every other
	// port of their VLAN (broadcast, multicast, unknown unicast).
	Flooded uint64 `json:"flooded"`
	// Unknown counts the unknown-unicast part of Flooded.
	Unknown uint64                 `json:"unknown_unicast"`
	Drops   [numDropReasons]uint64 `json:"-"`
	// DropMap is Drops by name, the form JSON carries.
	DropMap map[string]uint64 `json:"drops,omitempty"`
}

// Dropped is the sum over all reasons.
func (c *Counters) Dropped() uint64 {
	var n uint64
	for _, v := range c.Drops {
		n += v
	}
	return n
}

// counters is the live form, written with atomic adds once per batch.
type counters struct {
	rxFrames, rxBytes, txFrames, txBytes, flooded, unknown atomic.Uint64
	drops                                                  [numDropReasons]atomic.Uint64
	_                                                      [64]byte // keep ports off each other's cache lines
}

func (c *counters) snapshot() Counters {
	s := Counters{
		RxFrames: c.rxFrames.Load(), RxBytes: c.rxBytes.Load(),
		TxFrames: c.txFrames.Load(), TxBytes: c.txBytes.Load(),
		Flooded: c.flooded.Load(), Unknown: c.unknown.Load(),
		DropMap: make(map[string]uint64),
	}
	for i := range s.Drops {
		s.Drops[i] = c.drops[i].Load()
		if s.Drops[i] != 0 {
			s.DropMap[DropReason(i).String()] = s.Drops[i]
		}
	}
	return s
}
