// Package arp snoops ARP into a neighbour table and, on request, answers or
// refuses ARP on the switch's behalf: suppression (Linux neigh_suppress, VPP
// arp-term) and a per-port guard against spoofed sender addresses.
//
// The switch calls Handle only for frames whose EtherType is ARP, so the
// decoding here (gopacket) stays off the per-frame path of all other traffic.
package arp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/tapswitch/tapswitch/fdb"
)

// BodyLen is the length of an Ethernet/IPv4 ARP body.
const BodyLen = 28

// DefaultAgeing matches the FDB's: a neighbour not heard from for this long
// is no longer answered for.
const DefaultAgeing = 300 * time.Second

// Config sets the handler up.
type Config struct {
	// Ageing is how long a snooped neighbour is kept; 0 means forever.
	Ageing time.Duration
	// Suppress answers requests for known neighbours on the ingress port
	// instead of flooding them.
	Suppress bool
	// Guard drops ARP from a bound port whose sender IP is not bound to it,
	// or whose sender MAC is not the frame's source MAC.
	Guard bool
}

// Verdict is what the switch does with an ARP frame.
type Verdict uint8

const (
	// Forward: switch the frame as any other.
	Forward Verdict = iota
	// Drop: the guard refused it.
	Drop
	// Malformed: not a valid ARP body; drop it.
	Malformed
	// Reply: do not forward; send the reply Handle wrote back out the
	// ingress port.
	Reply
)

func (v Verdict) String() string {
	return [...]string{"forward", "drop", "malformed", "reply"}[v]
}

// Neighbour is one snooped IP -> MAC binding.
type Neighbour struct {
	IP       netip.Addr `json:"ip"`
	MAC      fdb.MAC    `json:"mac"`
	Port     fdb.PortID `json:"port"`
	VLAN     uint16     `json:"vlan"`
	LastSeen int64      `json:"last_seen"`
}

// Stats are the handler's counters.
type Stats struct {
	Neighbours int    `json:"neighbours"`
	Snooped    uint64 `json:"snooped"`
	Suppressed uint64 `json:"suppressed"`
	GuardDrops uint64 `json:"guard_drops"`
	Malformed  uint64 `json:"malformed"`
}

// Handler holds the neighbour table and the port bindings. ARP is rare next
// to data frames, so one mutex guards everything.
type Handler struct {
	mu       sync.Mutex
	cfg      Config
	neigh    map[uint64]*Neighbour // key: vlan<<32 | IPv4
	bindings map[fdb.PortID]map[netip.Addr]struct{}
	st       Stats

	arp layers.ARP // decode scratch, reused under mu
	out gopacket.SerializeBuffer
}

// New returns an empty handler.
func New(cfg Config) *Handler {
	return &Handler{
		cfg:      cfg,
		neigh:    make(map[uint64]*Neighbour),
		bindings: make(map[fdb.PortID]map[netip.Addr]struct{}),
		out:      gopacket.NewSerializeBufferExpectedSize(0, BodyLen),
	}
}

// SetConfig changes suppression, guard and ageing; the table is kept.
func (h *Handler) SetConfig(cfg Config) {
	h.mu.Lock()
	h.cfg = cfg
	h.mu.Unlock()
}

// Config returns the current settings.
func (h *Handler) Config() Config {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cfg
}

// Bind allows port to claim exactly ips as ARP sender addresses (when the
// guard is on). An unbound port may claim any address: uplinks and the
// gateway speak for many. A dual-stack pod's IPv6 address is bound too (ARP
// never claims one, so it changes nothing for ARP).
func (h *Handler) Bind(port fdb.PortID, ips ...netip.Addr) error {
	set := make(map[netip.Addr]struct{}, len(ips))
	for _, ip := range ips {
		if !ip.Is4() && !ip.Is6() || ip.Is4In6() || ip.Zone() != "" {
			return fmt.Errorf("arp: bind port %d to %v: not an IPv4 or IPv6 address", port, ip)
		}
		set[ip] = struct{}{}
	}
	h.mu.Lock()
	h.bindings[port] = set
	h.mu.Unlock()
	return nil
}

// RemovePort forgets port's bindings and the neighbours learned on it.
func (h *Handler) RemovePort(port fdb.PortID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.bindings, port)
	for k, n := range h.neigh {
		if n.Port == port {
			delete(h.neigh, k)
		}
	}
}

var errNotEthIPv4 = errors.New("not Ethernet/IPv4 ARP")

// Handle looks at one ARP body (the bytes after the EtherType) that arrived
// on port in vlan from the Ethernet source src. For a Reply verdict it
// writes the reply body into reply (at least BodyLen bytes) and returns the
// MAC to send it from.
func (h *Handler) Handle(port fdb.PortID, vlan uint16, src []byte, body []byte, now int64, reply []byte) (Verdict, fdb.MAC) {
	h.mu.Lock()
	defer h.mu.Unlock()
	a := &h.arp
	if err := decode(a, body); err != nil {
		if err == errNotEthIPv4 {
			// Some other hardware or protocol type: not ours to judge.
			return Forward, fdb.MAC{}
		}
		h.st.Malformed++
		return Malformed, fdb.MAC{}
	}
	spa := netip.AddrFrom4([4]byte(a.SourceProtAddress))
	tpa := netip.AddrFrom4([4]byte(a.DstProtAddress))
	sha := fdb.MACFrom(a.SourceHwAddress)

	if h.cfg.Guard && spa.IsValid() && !spa.IsUnspecified() {
		if ips, bound := h.bindings[port]; bound {
			_, ok := ips[spa]
			if !ok || sha != fdb.MACFrom(src) {
				h.st.GuardDrops++
				return Drop, fdb.MAC{}
			}
		}
	}
	if !spa.IsUnspecified() && !sha.IsMulticast() && !sha.IsZero() {
		k := key(vlan, spa)
		n := h.neigh[k]
		if n == nil {
			n = &Neighbour{IP: spa}
			h.neigh[k] = n
		}
		n.MAC, n.Port, n.VLAN, n.LastSeen = sha, port, vlan, now
		h.st.Snooped++
	}
	if !h.cfg.Suppress || a.Operation != layers.ARPRequest || spa == tpa {
		return Forward, fdb.MAC{}
	}
	n := h.neigh[key(vlan, tpa)]
	if n == nil || n.Port == port || h.expired(n, now) {
		// Unknown, stale, or the owner sits behind the ingress port and
		// hears the request itself.
		return Forward, fdb.MAC{}
	}
	if err := h.buildReply(a, n, reply); err != nil {
		return Forward, fdb.MAC{}
	}
	h.st.Suppressed++
	return Reply, n.MAC
}

func (h *Handler) expired(n *Neighbour, now int64) bool {
	return h.cfg.Ageing > 0 && now-n.LastSeen >= int64(h.cfg.Ageing)
}

func decode(a *layers.ARP, body []byte) error {
	if len(body) < BodyLen {
		return fmt.Errorf("arp body of %d bytes", len(body))
	}
	if err := a.DecodeFromBytes(body, gopacket.NilDecodeFeedback); err != nil {
		return err
	}
	if a.AddrType != layers.LinkTypeEthernet || a.Protocol != layers.EthernetTypeIPv4 ||
		a.HwAddressSize != 6 || a.ProtAddressSize != 4 {
		return errNotEthIPv4
	}
	if a.Operation != layers.ARPRequest && a.Operation != layers.ARPReply {
		return fmt.Errorf("arp operation %d", a.Operation)
	}
	return nil
}

// buildReply answers req on behalf of n.
func (h *Handler) buildReply(req *layers.ARP, n *Neighbour, out []byte) error {
	ip := n.IP.As4()
	rep := layers.ARP{
		AddrType:          layers.LinkTypeEthernet,
		Protocol:          layers.EthernetTypeIPv4,
		HwAddressSize:     6,
		ProtAddressSize:   4,
		Operation:         layers.ARPReply,
		SourceHwAddress:   n.MAC[:],
		SourceProtAddress: ip[:],
		DstHwAddress:      req.SourceHwAddress,
		DstProtAddress:    req.SourceProtAddress,
	}
	if err := h.out.Clear(); err != nil {
		return err
	}
	if err := rep.SerializeTo(h.out, gopacket.SerializeOptions{}); err != nil {
		return err
	}
	if len(out) < BodyLen {
		return fmt.Errorf("arp: reply buffer of %d bytes", len(out))
	}
	copy(out, h.out.Bytes())
	return nil
}

func key(vlan uint16, ip netip.Addr) uint64 {
	b := ip.As4()
	return uint64(vlan)<<32 | uint64(binary.BigEndian.Uint32(b[:]))
}

// Lookup returns the neighbour holding ip in vlan, if known and not expired.
func (h *Handler) Lookup(vlan uint16, ip netip.Addr, now int64) (Neighbour, bool) {
	if !ip.Is4() {
		return Neighbour{}, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.neigh[key(vlan, ip)]
	if n == nil || h.expired(n, now) {
		return Neighbour{}, false
	}
	return *n, true
}

// Age drops neighbours not heard from for the ageing time.
func (h *Handler) Age(now int64) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cfg.Ageing <= 0 {
		return 0
	}
	n := 0
	for k, v := range h.neigh {
		if h.expired(v, now) {
			delete(h.neigh, k)
			n++
		}
	}
	return n
}

// Neighbours returns the table sorted by VLAN then IP.
func (h *Handler) Neighbours() []Neighbour {
	h.mu.Lock()
	out := make([]Neighbour, 0, len(h.neigh))
	for _, n := range h.neigh {
		out = append(out, *n)
	}
	h.mu.Unlock()
	sort.Slice(out, func(a, b int) bool {
		if out[a].VLAN != out[b].VLAN {
			return out[a].VLAN < out[b].VLAN
		}
		return out[a].IP.Less(out[b].IP)
	})
	return out
}

// Stats returns the counters.
func (h *Handler) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.st
	s.Neighbours = len(h.neigh)
	return s
}

// Build writes an Ethernet/IPv4 ARP body into out (at least BodyLen bytes);
// the simulator and tests use it to speak ARP.
func Build(out []byte, op uint16, sha fdb.MAC, spa netip.Addr, tha fdb.MAC, tpa netip.Addr) error {
	if len(out) < BodyLen {
		return fmt.Errorf("arp: buffer of %d bytes", len(out))
	}
	if !spa.Is4() || !tpa.Is4() {
		return fmt.Errorf("arp: %v -> %v: IPv4 only", spa, tpa)
	}
	s, t := spa.As4(), tpa.As4()
	a := layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: op,
		SourceHwAddress: sha[:], SourceProtAddress: s[:],
		DstHwAddress: tha[:], DstProtAddress: t[:],
	}
	buf := gopacket.NewSerializeBufferExpectedSize(0, BodyLen)
	if err := a.SerializeTo(buf, gopacket.SerializeOptions{}); err != nil {
		return err
	}
	copy(out, buf.Bytes())
	return nil
}

// Packet is a decoded ARP body, for callers outside the switch (simulator
// hosts, tests).
type Packet struct {
	Op       uint16
	SHA, THA fdb.MAC
	SPA, TPA netip.Addr
}

// Parse decodes an Ethernet/IPv4 ARP body.
func Parse(body []byte) (Packet, error) {
	var a layers.ARP
	if err := decode(&a, body); err != nil {
		return Packet{}, fmt.Errorf("arp: %w", err)
	}
	return Packet{
		Op:  a.Operation,
		SHA: fdb.MACFrom(a.SourceHwAddress), THA: fdb.MACFrom(a.DstHwAddress),
		SPA: netip.AddrFrom4([4]byte(a.SourceProtAddress)), TPA: netip.AddrFrom4([4]byte(a.DstProtAddress)),
	}, nil
}
