// Package vswitch is the switching core of tapswitch: MAC learning, flooding,
// VLANs and forwarding between ports, on top of package fdb and package arp.
//
// It knows ports only through the Port interface and runs to completion: the
// goroutine that read a batch of frames forwards it through an Ingress, with
// no allocation, lock, log call or channel hand-off per frame.
package vswitch

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tapswitch/tapswitch/arp"
	"github.com/tapswitch/tapswitch/fdb"
)

// Frame geometry.
const (
	ethHdrLen = 14
	tagLen    = 4
	// MaxFrame is the longest frame the switch carries: a 64 KiB GSO
	// super-frame plus its Ethernet header and a tag.
	MaxFrame = 65535 + ethHdrLen + tagLen
	// DefaultMTU is the L3 MTU of ports that name none.
	DefaultMTU = 1500
)

// Clock is where the switch reads time, in nanoseconds. The node uses a
// coarse clock (a per-frame time.Now costs more than the whole lookup); the
// simulator its virtual clock.
type Clock interface {
	Now() int64
}

// Tracer, when set, hears the switch's decision for every frame. It exists
// for the simulator and debugging; the node leaves it nil, which costs one
// predictable branch per frame.
type Tracer interface {
	Frame(in fdb.PortID, frame []byte, d Decision)
}

// Decision is what the switch did with one frame.
type Decision struct {
	VLAN    uint16
	Learn   fdb.Result
	Dropped bool
	Drop    DropReason
	ARP     arp.Verdict // of the ARP or NDP handler; Forward for other frames
	Flooded bool
	Unknown bool       // flooded because the destination was not in the FDB
	Out     fdb.PortID // the port of a known unicast
	Copies  int        // frames sent
}

// Config sets a switch up.
type Config struct {
	// Name names the switch in logs and listings.
	Name string
	// HeaderLen is the number of bytes in front of every frame on every
	// port: 10 for TAPs with a virtio-net header, 0 for plain frames.
	HeaderLen int
	// MTU is the default port MTU.
	MTU int
	FDB fdb.Config
	ARP arp.Config
	// Clock defaults to a coarse system clock.
	Clock Clock
	// Tracer is optional.
	Tracer Tracer
}

// DefaultConfig is a switch with plain frames, the FDB's defaults and ARP
// snooping without suppression or guard.
func DefaultConfig() Config {
	return Config{Name: "tapswitch", MTU: DefaultMTU, FDB: fdb.DefaultConfig(), ARP: arp.Config{Ageing: arp.DefaultAgeing}}
}

// Switch is one L2 switch.
type Switch struct {
	name   string
	hdrLen int
	mtu    int
	clock  Clock
	tracer Tracer
	fdb    *fdb.Table
	arp    *arp.Handler
	ownClk *CoarseClock

	ports  atomicSet
	mu     sync.Mutex // serialises port changes
	nextID fdb.PortID
}

// New builds a switch with no ports.
func New(cfg Config) (*Switch, error) {
	if cfg.HeaderLen != 0 && cfg.HeaderLen != VnetHdrLen && cfg.HeaderLen != VnetHdrLen+2 {
		return nil, fmt.Errorf("switch %q: header length %d: want 0, %d or %d", cfg.Name, cfg.HeaderLen, VnetHdrLen, VnetHdrLen+2)
	}
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	if cfg.MTU < 68 || cfg.MTU > MaxFrame {
		return nil, fmt.Errorf("switch %q: mtu %d: want 68-%d", cfg.Name, cfg.MTU, MaxFrame)
	}
	t, err := fdb.New(cfg.FDB)
	if err != nil {
		return nil, fmt.Errorf("switch %q: %w", cfg.Name, err)
	}
	if cfg.ARP.Ageing < 0 {
		return nil, fmt.Errorf("switch %q: arp ageing %v: must not be negative", cfg.Name, cfg.ARP.Ageing)
	}
	sw := &Switch{
		name: cfg.Name, hdrLen: cfg.HeaderLen, mtu: cfg.MTU,
		clock: cfg.Clock, tracer: cfg.Tracer, fdb: t, arp: arp.New(cfg.ARP),
	}
	if sw.clock == nil {
		sw.ownClk = NewCoarseClock(time.Millisecond)
		sw.clock = sw.ownClk
	}
	sw.ports.Store(buildSet(nil))
	return sw, nil
}

// Close stops the switch's own clock, if it made one. Ports are the
// caller's to close.
func (sw *Switch) Close() {
	if sw.ownClk != nil {
		sw.ownClk.Stop()
	}
}

// Name is the switch's name.
func (sw *Switch) Name() string { return sw.name }

// HeaderLen is the per-frame header length ports must use.
func (sw *Switch) HeaderLen() int { return sw.hdrLen }

// FDB is the switch's forwarding table.
func (sw *Switch) FDB() *fdb.Table { return sw.fdb }

// ARP is the switch's ARP handler and neighbour table.
func (sw *Switch) ARP() *arp.Handler { return sw.arp }

// Now reads the switch's clock.
func (sw *Switch) Now() int64 { return sw.clock.Now() }

// AddPort attaches p and returns its ID. IDs are not reused until the 16-bit
// space wraps, so an FDB entry or a frame in flight for a removed port can
// never be mistaken for a new one.
func (sw *Switch) AddPort(p Port, cfg PortConfig) (fdb.PortID, error) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	cur := sw.ports.Load()
	for _, q := range cur.ordered {
		if q.cfg.Name == cfg.Name {
			return 0, fmt.Errorf("switch %q: port %q already exists", sw.name, cfg.Name)
		}
	}
	if len(cur.ordered) >= maxPorts {
		return 0, fmt.Errorf("switch %q: port %q: the switch has %d ports already", sw.name, cfg.Name, maxPorts)
	}
	id := sw.nextID
	for {
		id++
		if id > maxPorts {
			id = 1
		}
		if cur.get(id) == nil {
			break
		}
	}
	np, err := newPort(id, p, cfg, sw.mtu)
	if err != nil {
		return 0, fmt.Errorf("switch %q: %w", sw.name, err)
	}
	if err := sw.fdb.AddPort(id, cfg.FDBLimit); err != nil {
		return 0, fmt.Errorf("switch %q: port %q: %w", sw.name, cfg.Name, err)
	}
	if len(cfg.IPs) > 0 {
		if err := sw.arp.Bind(id, cfg.IPs...); err != nil {
			sw.fdb.RemovePort(id, sw.clock.Now())
			return 0, fmt.Errorf("switch %q: port %q: %w", sw.name, cfg.Name, err)
		}
	}
	sw.nextID = id
	sw.ports.Store(buildSet(append(append([]*port(nil), cur.ordered...), np)))
	return id, nil
}

// maxPorts bounds the port IDs (and so the per-ingress tables).
const maxPorts = 65535

// RemovePort detaches a port and flushes its FDB entries and neighbours.
// Frames its readers are still forwarding are dropped (DropNoPort); the
// caller stops the readers and closes the device.
func (sw *Switch) RemovePort(id fdb.PortID) error {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	cur := sw.ports.Load()
	p := cur.get(id)
	if p == nil {
		return fmt.Errorf("switch %q: no port %d", sw.name, id)
	}
	p.removed.Store(true)
	rest := make([]*port, 0, len(cur.ordered)-1)
	for _, q := range cur.ordered {
		if q != p {
			rest = append(rest, q)
		}
	}
	sw.ports.Store(buildSet(rest))
	sw.fdb.RemovePort(id, sw.clock.Now())
	sw.arp.RemovePort(id)
	return nil
}

// PortByName finds a port's ID.
func (sw *Switch) PortByName(name string) (fdb.PortID, bool) {
	for _, p := range sw.ports.Load().ordered {
		if p.cfg.Name == name {
			return p.id, true
		}
	}
	return 0, false
}

// SetMirror has m hear every frame port id receives and sends, until
// ClearMirror. A port has at most one mirror.
func (sw *Switch) SetMirror(id fdb.PortID, m Mirror) error {
	if m == nil {
		return fmt.Errorf("switch %q: port %d: nil mirror", sw.name, id)
	}
	p := sw.ports.Load().get(id)
	if p == nil {
		return fmt.Errorf("switch %q: no port %d", sw.name, id)
	}
	if !p.mirror.CompareAndSwap(nil, &mirrorRef{m}) {
		return fmt.Errorf("switch %q: port %q: %w", sw.name, p.cfg.Name, ErrMirrored)
	}
	return nil
}

// ErrMirrored says a port already has a mirror.
var ErrMirrored = errors.New("already mirrored")

// ClearMirror removes m from port id, if m is its mirror. Batches being
// forwarded may still reach m shortly after.
func (sw *Switch) ClearMirror(id fdb.PortID, m Mirror) {
	p := sw.ports.Load().get(id)
	if p == nil {
		return
	}
	if r := p.mirror.Load(); r != nil && r.m == m {
		p.mirror.CompareAndSwap(r, nil)
	}
}

// PortInfo describes a port and its counters. Its JSON form is the
// simulator's (sim's results and metrics); the control API has wire types
// of its own.
type PortInfo struct {
	ID       fdb.PortID `json:"id"`
	Name     string     `json:"name"`
	PVID     uint16     `json:"pvid"`
	Trunk    bool       `json:"trunk"`
	Allowed  []uint16   `json:"allowed,omitempty"`
	Hairpin  bool       `json:"hairpin"`
	MTU      int        `json:"mtu"`
	Storm    int        `json:"storm,omitempty"`
	LockMAC  fdb.MAC    `json:"lock_mac,omitzero"` // zero: not locked
	FDB      int        `json:"fdb_entries"`       // learned, static and local
	Counters Counters   `json:"counters"`
}

func (sw *Switch) info(p *port) PortInfo {
	pi := PortInfo{
		ID: p.id, Name: p.cfg.Name, PVID: p.pvid, Trunk: p.cfg.Trunk, Hairpin: p.hairpin,
		MTU: p.maxLen - ethHdrLen - tagLen, Storm: p.cfg.Storm, LockMAC: p.cfg.LockMAC,
		FDB: sw.fdb.PortEntries(p.id) + sw.fdb.PortStaticEntries(p.id), Counters: p.c.snapshot(),
	}
	if p.cfg.Trunk {
		pi.Allowed = p.allowed.list()
	}
	return pi
}

// Ports lists the ports in ID order, counters read without stopping
// traffic.
func (sw *Switch) Ports() []PortInfo {
	set := sw.ports.Load()
	out := make([]PortInfo, 0, len(set.ordered))
	for _, p := range set.ordered {
		out = append(out, sw.info(p))
	}
	return out
}

// Port describes one port.
func (sw *Switch) Port(id fdb.PortID) (PortInfo, bool) {
	p := sw.ports.Load().get(id)
	if p == nil {
		return PortInfo{}, false
	}
	return sw.info(p), true
}

// Tick ages the FDB and the neighbour table; call it about once a second.
func (sw *Switch) Tick() {
	now := sw.clock.Now()
	sw.fdb.Age(now)
	sw.arp.Age(now)
}
