package vswitch

import (
	"fmt"
	"math/bits"
	"net/netip"
	"sort"
	"sync/atomic"

	"github.com/tapswitch/tapswitch/arp"
	"github.com/tapswitch/tapswitch/fdb"
)

// Port is the seam between the switch and whatever carries frames: an
// in-memory pipe in tests and the simulator, a TAP queue on a node, a capture
// wrapper around either.
//
// WriteBatch transmits frames, each starting with the switch's header
// (Config.HeaderLen bytes of virtio-net header, possibly none) followed by
// the Ethernet frame. It must not keep the slices after it returns: the
// switch lends them, and the same slice goes to every port of a flood.
// It returns how many frames went out and the first error.
type Port interface {
	WriteBatch(frames [][]byte) (int, error)
}

// PortConfig describes a port to AddPort.
type PortConfig struct {
	// Name is unique on the switch ("pod1", "gw", "uplink").
	Name string
	// PVID is the VLAN of untagged frames: the access VLAN, or a trunk's
	// native VLAN. 0 on an access port means VLAN 1; 0 on a trunk means
	// untagged frames are dropped.
	PVID uint16
	// Trunk ports carry the VLANs in Allowed tagged (and PVID untagged).
	Trunk   bool
	Allowed []uint16
	// Hairpin lets frames go back out the port they came in on.
	Hairpin bool
	// FDBLimit bounds the MACs learned on this port (0: the table's
	// per-port default).
	FDBLimit int
	// IPs are the addresses the port may claim when the guard is on: IPv4
	// in ARP, IPv6 in neighbour discovery. A port with addresses is a pod's:
	// its router advertisements and redirects are dropped unless the ARP
	// config allows them (arp.Config.PodRouterAdvertisements).
	IPs []netip.Addr
	// MTU of the port's link; frames longer than MTU plus Ethernet and one
	// VLAN tag are dropped unless they are GSO super-frames. 0: the switch's.
	MTU int
	// Storm limits the broadcast, multicast and unknown-unicast frames per
	// second this port may send into the switch; 0 means no limit.
	Storm int
	// LockMAC, when not zero, is the only source MAC the port may send
	// from (port security, as OVS and Cisco switches have it): a pod whose
	// MAC the daemon assigned cannot spoof another host's or flood the FDB.
	// Frames from any other source are dropped before learning, ARP and
	// forwarding and counted as DropSrcLock ("src-lock"). It must be a
	// unicast address. The zero value turns the lock off.
	LockMAC fdb.MAC
}

// DefaultVLAN is the access VLAN of ports that name none, as on the Linux
// bridge.
const DefaultVLAN = 1

// vlanSet is a bitmap of the 4096 VLAN IDs.
type vlanSet [64]uint64

func (s *vlanSet) add(v uint16)      { s[v>>6] |= 1 << (v & 63) }
func (s *vlanSet) has(v uint16) bool { return s[v>>6]&(1<<(v&63)) != 0 }
func (s *vlanSet) list() (out []uint16) {
	for w, word := range s {
		for word != 0 {
			b := bits.TrailingZeros64(word)
			out = append(out, uint16(w*64+b))
			word &= word - 1
		}
	}
	return out
}

// port is the switch's view of one port. It is immutable once published in a
// portSet, but for its counters.
type port struct {
	id      fdb.PortID
	p       Port
	pvid    uint16
	allowed vlanSet // VLANs accepted and sent; includes pvid
	hairpin bool    // cfg.Hairpin, read per frame: kept with the fields above
	maxLen  int     // longest non-GSO Ethernet frame accepted
	// lockKey is fdb.MACKey(LockMAC), compared with the frame's source key
	// as it is already computed; 0 (never a key, see fdb.Key)
	// when the port is not locked.
	lockKey fdb.Key
	cfg     PortConfig  // as given; Name and Trunk are read from here
	storm   *RateWindow // storm control; nil: none
	c       counters
	removed atomic.Bool
	// mirror is the capture hook: nil (the usual case) costs one atomic
	// load per batch in each direction.
	mirror atomic.Pointer[mirrorRef]
}

// Mirror hears a port's frames, as they arrive from the port and as they
// leave to it, for packet capture. It is called from the forwarding
// goroutines, several at once, once per batch: it must not block, and must
// copy what it keeps (the frames, header included, are lent).
type Mirror interface {
	Mirror(dir Direction, frames [][]byte)
}

// Direction is which way mirrored frames crossed the port.
type Direction uint8

const (
	Received Direction = iota // from the port's device into the switch
	Sent                      // from the switch out to the port's device
)

func (d Direction) String() string {
	if d == Received {
		return "in"
	}
	return "out"
}

type mirrorRef struct{ m Mirror }

// mirrorOf is the port's mirror, or nil.
func (p *port) mirrorOf() Mirror {
	if r := p.mirror.Load(); r != nil {
		return r.m
	}
	return nil
}

// untagged says whether frames of vid leave this port without a tag.
func (p *port) untagged(vid uint16) bool { return vid == p.pvid }

// portSet is a snapshot of the ports, replaced whole on every change, so the
// frame path reads it with one atomic load and no lock.
type portSet struct {
	byID    []*port            // indexed by port ID
	members map[uint16][]*port // VLAN -> ports carrying it, in ID order
	ordered []*port            // all ports, in ID order
}

// atomicSet holds the current portSet.
type atomicSet struct{ atomic.Pointer[portSet] }

func (s *portSet) get(id fdb.PortID) *port {
	if int(id) < len(s.byID) {
		return s.byID[id]
	}
	return nil
}

func buildSet(ports []*port) *portSet {
	sort.Slice(ports, func(a, b int) bool { return ports[a].id < ports[b].id })
	s := &portSet{members: make(map[uint16][]*port), ordered: ports}
	maxID := fdb.PortID(0)
	for _, p := range ports {
		maxID = max(maxID, p.id)
	}
	s.byID = make([]*port, maxID+1)
	for _, p := range ports {
		s.byID[p.id] = p
		for _, v := range p.allowed.list() {
			s.members[v] = append(s.members[v], p)
		}
	}
	return s
}

func newPort(id fdb.PortID, p Port, cfg PortConfig, defMTU int) (*port, error) {
	if cfg.Name == "" {
		return nil, fmt.Errorf("port: a name is required")
	}
	if p == nil {
		return nil, fmt.Errorf("port %q: no Port to write to", cfg.Name)
	}
	np := &port{id: id, p: p, hairpin: cfg.Hairpin, cfg: cfg}
	if cfg.PVID > fdb.MaxVLAN || cfg.PVID == fdb.MaxVLAN {
		return nil, fmt.Errorf("port %q: pvid %d: want 1-4094", cfg.Name, cfg.PVID)
	}
	np.pvid = cfg.PVID
	if !cfg.Trunk {
		if len(cfg.Allowed) > 0 {
			return nil, fmt.Errorf("port %q: allowed VLANs %v need a trunk port", cfg.Name, cfg.Allowed)
		}
		if np.pvid == 0 {
			np.pvid = DefaultVLAN
		}
	}
	if np.pvid != 0 {
		np.allowed.add(np.pvid)
	}
	for _, v := range cfg.Allowed {
		if v == 0 || v >= fdb.MaxVLAN {
			return nil, fmt.Errorf("port %q: allowed VLAN %d: want 1-4094", cfg.Name, v)
		}
		np.allowed.add(v)
	}
	if cfg.Trunk && np.allowed == (vlanSet{}) {
		return nil, fmt.Errorf("port %q: trunk carries no VLAN (set allowed or pvid)", cfg.Name)
	}
	mtu := cfg.MTU
	if mtu == 0 {
		mtu = defMTU
	}
	if mtu < 68 || mtu > MaxFrame {
		return nil, fmt.Errorf("port %q: mtu %d: want 68-%d", cfg.Name, mtu, MaxFrame)
	}
	np.maxLen = mtu + ethHdrLen + tagLen
	if cfg.FDBLimit < 0 {
		return nil, fmt.Errorf("port %q: fdb limit %d: must not be negative", cfg.Name, cfg.FDBLimit)
	}
	for _, ip := range cfg.IPs {
		if err := arp.CheckBindable(ip); err != nil {
			return nil, fmt.Errorf("port %q: ip %w", cfg.Name, err)
		}
	}
	if cfg.Storm < 0 {
		return nil, fmt.Errorf("port %q: storm limit %d: must not be negative", cfg.Name, cfg.Storm)
	}
	if cfg.Storm > 0 {
		np.storm = newStormMeter(cfg.Storm)
	}
	if !cfg.LockMAC.IsZero() {
		if cfg.LockMAC.IsMulticast() {
			return nil, fmt.Errorf("port %q: lock mac %v: want a unicast address", cfg.Name, cfg.LockMAC)
		}
		np.lockKey = fdb.MACKey(cfg.LockMAC[:])
	}
	return np, nil
}
