package sim

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/tapswitch/tapswitch/fdb"
)

// Scenario is a parsed scenario: the topology, a timeline of actions and the
// assertions that judge the run. Parse fills in every default; a Scenario
// built in Go gets exactly what its fields say. Line fields point into the
// scenario file for error messages (0 when built in Go).
type Scenario struct {
	File        string // named in error messages
	Name        string
	Description string
	Seed        uint64
	Run         RunSpec
	Switches    []SwitchSpec
	Hosts       []HostSpec
	Links       []LinkSpec
	Timeline    []Step
	Assertions  []Assertion
}

// RunSpec bounds a run. A run ends when nothing is left to do, at Duration,
// after MaxEvents, or when MaxFrames frames are in flight at once,
// whichever comes first; a loop storm is stopped by the last three.
type RunSpec struct {
	Duration  time.Duration // 0: no limit
	MaxEvents uint64        // 0: no limit (Parse defaults to DefaultMaxEvents)
	MaxFrames int           // frames in flight at once; 0: no limit (Parse defaults to DefaultMaxFrames)
	Tick      time.Duration // switch ageing sweep and metrics interval
}

// Defaults that Parse fills in.
const (
	DefaultMaxEvents  = 10_000_000
	DefaultMaxFrames  = 200_000
	DefaultTick       = time.Second
	DefaultLatency    = 10 * time.Microsecond
	DefaultBandwidth  = 10_000_000_000 // bits/s
	DefaultQueue      = 1000           // frames, a TAP's tx queue
	DefaultARPTimeout = 60 * time.Second
)

// SwitchSpec is one simulated switch: a real vswitch.Switch.
type SwitchSpec struct {
	Line       int
	Name       string
	Ageing     time.Duration // 0: entries never age
	TableLimit int
	PortLimit  int
	Policy     fdb.Policy
	Suppress   bool          // ARP suppression
	Guard      bool          // ARP guard (ports bound to their hosts' IPs)
	ARPAgeing  time.Duration // snooped neighbours; 0: never
	MTU        int
	Ports      []PortSpec // settings of ports that links create by name
}

// PortSpec sets up one switch port; a link naming switch:port creates it.
type PortSpec struct {
	Line     int
	Name     string
	VLAN     uint16 // access VLAN or trunk native VLAN (vswitch PVID)
	Trunk    bool
	Allowed  []uint16
	Hairpin  bool
	FDBLimit int
	// IPs the guard lets the port claim. nil: the IPs of the host interface
	// at the other end of the port's link; empty: none (unbound).
	IPs   []netip.Addr
	Storm int // broadcast/unknown frames per second the port may send in
	MTU   int
	// LockMAC locks the port to the MAC of the host interface it faces
	// (vswitch.PortConfig.LockMAC, the switch's half of lock_pod_mac).
	LockMAC bool
	// RxPPS caps the frames per second the switch takes in on this port,
	// like the daemon's rx_pps reader: frames beyond it wait in the link's
	// queue (the TAP's) and are tail-dropped when it is full. 0: no cap.
	RxPPS int
}

// HostSpec is a simulated pod, node or router.
type HostSpec struct {
	Line       int
	Name       string
	Forward    bool // route between interfaces (a router), lowering TTL
	Interfaces []IfaceSpec
	Routes     []RouteSpec
	Gateway    netip.Addr // default route; zero: none
	ARPTimeout time.Duration
	StaticARP  []StaticARP
}

// IfaceSpec is one network interface of a host.
type IfaceSpec struct {
	Line int
	Name string
	MAC  fdb.MAC      // zero: 0a:58 and the IPv4 address, as kubenet does
	IP   netip.Prefix // address and subnet; zero: no address
	MTU  int
}

// RouteSpec sends To via the neighbour Via, which must be on a connected
// subnet.
type RouteSpec struct {
	Line int
	To   netip.Prefix
	Via  netip.Addr
}

// StaticARP is a permanent ARP cache entry. MAC is a MAC address or a host
// (host or host:iface) whose MAC to use.
type StaticARP struct {
	Line int
	IP   netip.Addr
	MAC  string
}

// LinkSpec is a cable between two endpoints. An endpoint is a host
// ("pod1", or "router:eth1" for one of several interfaces) or a switch port
// ("cbr0:pod1"; a bare switch name gets a port named after the other end).
type LinkSpec struct {
	Line      int
	Name      string // default "a--b"
	A, B      string
	Latency   time.Duration
	Bandwidth int64   // bits/s; 0: unlimited (no serialisation, no queue)
	Loss      float64 // probability that a frame is lost, per direction
	Queue     int     // frames waiting or in serialisation; 0: unlimited
	Down      bool    // starts down
}

// Step is one timeline entry: it happens at At when HasAt, else at the
// previous step's time plus Wait.
type Step struct {
	Line   int
	At     time.Duration
	HasAt  bool
	Wait   time.Duration
	Action Action // nil for a bare wait
}

// Assertion is one check on the run, evaluated at the end, or at At when
// HasAt. Counting checks cover the whole run, or only the window from Since
// when HasSince. Which fields matter depends on Kind:
//
//	delivered, lost, duplicates   Ping or Flow ("*": all pings or all flows)
//	ttl                           Ping: TTL of the last reply
//	frames                        Port (switch:port or host[:iface]), Dir, Type
//	fdb                           Switch, MAC, VLAN (0: any), Port or Absent
//	flood_ratio                   Switch, Port (optional)
//	arp_cache                     Host, IP, MAC or Absent
//	switch_stat                   Switch, Stat
//	echo_from                     Host, IP: the host answered a ping from IP
//	stopped                       Reason: idle, duration, max_events or max_frames
type Assertion struct {
	Line     int
	At       time.Duration
	HasAt    bool
	Since    time.Duration
	HasSince bool
	Kind     string
	Ping     string
	Flow     string
	Switch   string
	Port     string
	Host     string
	MAC      string // a MAC address or a host[:iface]
	IP       netip.Addr
	VLAN     uint16
	Dir      string // rx or tx, as seen by the port's owner
	Type     string // all, broadcast, arp, arp-request, unicast
	Stat     string
	Reason   string
	Absent   bool
	Cmp      Cmp
}

// Cmp compares a number: Op is one of == >= <= < >.
type Cmp struct {
	Op    string
	Value float64
}

func (c Cmp) ok(v float64) bool {
	switch c.Op {
	case "==":
		return v == c.Value
	case ">=":
		return v >= c.Value
	case "<=":
		return v <= c.Value
	case "<":
		return v < c.Value
	case ">":
		return v > c.Value
	}
	return false
}

func (c Cmp) String() string { return fmt.Sprintf("%s %s", c.Op, FormatNum(c.Value)) }

// FormatNum writes an assertion's number as its results show it: an
// integer without a fraction, anything else to four significant digits.
func FormatNum(v float64) string {
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%.4g", v)
}

// Error is a scenario error: a bad key or value, or an impossible topology,
// with the line it comes from.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	switch {
	case e.File != "" && e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	case e.File != "":
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

func (sc *Scenario) errorf(line int, format string, args ...any) *Error {
	return &Error{File: sc.File, Line: line, Msg: fmt.Sprintf(format, args...)}
}
