// Package api is the daemon's control API: HTTP with JSON bodies on a
// root-only unix socket. It holds the wire types, the server (which serves a
// Backend, the daemon) and the client the CLI uses.
//
// The wire types are the API's own: the core packages' types (switch, fdb,
// arp) become them in convert.go and nowhere else, so that renaming a core
// field cannot change the API's JSON (wire_test.go pins it).
package api

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/tapswitch/tapswitch/fdb"
)

// DefaultSocket is where the daemon listens unless configured otherwise.
const DefaultSocket = "/run/tapswitch/tapswitch.sock"

// Error kinds a Backend wraps its errors in (with %w); the server turns
// them into HTTP statuses and the client back into these kinds.
var (
	ErrInvalid  = errors.New("invalid input")  // 400
	ErrNotFound = errors.New("not found")      // 404
	ErrConflict = errors.New("already in use") // 409
)

// Backend is what the server serves; the daemon implements it.
type Backend interface {
	Status() Status
	Pods() []Pod
	Pod(name string) (Pod, error)
	AddPod(ctx context.Context, spec PodSpec) (Pod, error)
	DeletePod(ctx context.Context, name string) error
	Ports() []Port
	FDB() []FDBEntry
	Neighbours() []Neighbour
	Stats() Stats
}

// PodSpec asks for a pod (POST /v1/pods).
type PodSpec struct {
	Name string `json:"name"`
	IP   string `json:"ip"` // CIDR or bare address in the pod subnet
	// IPs are more addresses, in the same forms: a dual-stack pod's IPv6
	// address (in the node's IPv6 subnet). With IP, at most one address of
	// each family and an IPv4 one among them.
	IPs  []string `json:"ips,omitempty"`
	MAC  string   `json:"mac,omitempty"`  // empty: derived from the IP
	VLAN uint16   `json:"vlan,omitempty"` // 0: VLAN 1

	// The CNI plugin's attachments. NetNS is the path of an existing
	// namespace (/var/run/netns/X, /proc/PID/ns/net) that the daemon neither
	// creates nor deletes; empty means the named namespace PREFIX+Name.
	// IfName is the TAP's name in it (default eth0). ContainerID and Network
	// are the runtime's CNI_CONTAINERID and network name, recorded so DEL
	// and GC find the attachment after a daemon restart.
	NetNS       string `json:"netns,omitempty"`
	IfName      string `json:"ifname,omitempty"`
	ContainerID string `json:"container_id,omitempty"`
	Network     string `json:"network,omitempty"`
	// NoDefaultRoute leaves the namespace's routes alone: the CNI plugin
	// sets it when the namespace already has a default route (a second
	// interface).
	NoDefaultRoute bool `json:"no_default_route,omitempty"`
}

// Pod states.
const (
	PodUp   = "up"   // the port forwards
	PodGone = "gone" // the TAP or namespace vanished; `pod del` cleans up
)

// Pod is one pod's port as the daemon knows it.
type Pod struct {
	Name   string `json:"name"`
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"` // why it is gone
	Netns  string `json:"netns"`
	IfName string `json:"ifname"`
	IP     string `json:"ip"` // the IPv4 address (CIDR)
	// IPs are all the pod's addresses (CIDR), the IPv4 one first: a
	// dual-stack pod's IPv6 address follows it.
	IPs     []string   `json:"ips"`
	MAC     string     `json:"mac"`
	VLAN    uint16     `json:"vlan"`
	Port    fdb.PortID `json:"port,omitempty"` // 0 when gone
	Queues  int        `json:"queues"`
	Static  bool       `json:"static,omitempty"`
	Created time.Time  `json:"created"`
	// Set for CNI attachments: the runtime's container ID and network name.
	ContainerID string `json:"container_id,omitempty"`
	Network     string `json:"network,omitempty"`
}

// Port kinds.
const (
	KindPod     = "pod"
	KindGateway = "gateway"
)

// Port is a switch port with its counters. A gone pod keeps the counters it
// had when its port was removed.
type Port struct {
	ID       fdb.PortID `json:"id"`
	Name     string     `json:"name"`
	PVID     uint16     `json:"pvid"` // access VLAN, or a trunk's native VLAN
	Trunk    bool       `json:"trunk"`
	Allowed  []uint16   `json:"allowed,omitempty"` // a trunk's VLANs
	Hairpin  bool       `json:"hairpin"`
	MTU      int        `json:"mtu"`
	Storm    int        `json:"storm,omitempty"`   // broadcast/unknown frames per second allowed in
	LockMAC  fdb.MAC    `json:"lock_mac,omitzero"` // zero: not locked
	FDB      int        `json:"fdb_entries"`       // learned, static and local
	Counters Counters   `json:"counters"`
	Kind     string     `json:"kind"`
	State    string     `json:"state"`
	MAC      string     `json:"mac,omitempty"`
	IP       string     `json:"ip,omitempty"` // the IPv4 address
	// IPs are the port's addresses, IPv4 first (a dual-stack pod or
	// gateway has an IPv6 one too).
	IPs []string `json:"ips,omitempty"`
	// DeviceDrops is what the port's TAP dropped before the switch read it
	// (the kernel's tx_dropped of the TAP: its queue was full, or
	// lock_pod_mac's filter refused the frame); absent for a gone port.
	DeviceDrops *uint64 `json:"device_drops,omitempty"`
}

// Counters are one port's totals, or the switch's summed over its ports.
// Bytes count Ethernet frames.
type Counters struct {
	RxFrames uint64 `json:"rx_frames"`
	RxBytes  uint64 `json:"rx_bytes"`
	TxFrames uint64 `json:"tx_frames"`
	TxBytes  uint64 `json:"tx_bytes"`
	// Flooded counts frames received on the port that went to every other
	// port of their VLAN (broadcast, multicast, unknown unicast).
	Flooded uint64 `json:"flooded"`
	// Unknown counts the unknown-unicast part of Flooded.
	Unknown uint64 `json:"unknown_unicast"`
	// Drops counts the frames the switch dropped by reason; only reasons
	// with drops are present.
	Drops map[string]uint64 `json:"drops,omitempty"`
}

// FDBEntry is one forwarding table row.
type FDBEntry struct {
	MAC      fdb.MAC    `json:"mac"`
	VLAN     uint16     `json:"vlan"`
	Port     fdb.PortID `json:"port"`
	PortName string     `json:"port_name"`
	Kind     string     `json:"kind"`          // learned, static, local
	Age      float64    `json:"age,omitempty"` // seconds since the MAC last sent; learned only
}

// Neighbour is one snooped IP -> MAC binding.
type Neighbour struct {
	IP       netip.Addr `json:"ip"`
	MAC      fdb.MAC    `json:"mac"`
	VLAN     uint16     `json:"vlan"`
	Port     fdb.PortID `json:"port"`
	PortName string     `json:"port_name"`
	Age      float64    `json:"age"` // seconds since last heard
}

// Status describes the daemon.
type Status struct {
	Switch  string    `json:"switch"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	Subnet  string    `json:"subnet"`
	Gateway string    `json:"gateway"` // the address
	// SubnetV6 and GatewayV6 are the node's IPv6 pod subnet and the
	// gateway's IPv6 address, when dual-stack pods are configured.
	SubnetV6  string `json:"subnet_v6,omitempty"`
	GatewayV6 string `json:"gateway_v6,omitempty"`
	GatewayIf string `json:"gateway_interface"`
	GatewayMA string `json:"gateway_mac"`
	StateFile string `json:"state_file"`
	Queues    int    `json:"queues"`
	// Reattached is how many pods the daemon found from a previous run.
	Reattached int `json:"reattached"`
}

// Stats are the switch-wide counters.
type Stats struct {
	Switch   string   `json:"switch"`
	Uptime   float64  `json:"uptime"` // seconds
	Ports    int      `json:"ports"`
	PodsUp   int      `json:"pods_up"`
	PodsGone int      `json:"pods_gone"`
	FDB      FDBStats `json:"fdb"`
	ARP      ARPStats `json:"arp"`
	Totals   Counters `json:"totals"` // summed over the live ports
}

// FDBStats are the forwarding table's counters.
type FDBStats struct {
	Entries  int    `json:"entries"` // all entries, static included
	Learned  uint64 `json:"learned"` // inserts by learning
	Moved    uint64 `json:"moved"`
	Flaps    uint64 `json:"flaps"` // moves that made a MAC count as flapping
	Aged     uint64 `json:"aged"`
	Evicted  uint64 `json:"evicted"` // removed to make room under evict-fair
	Refused  uint64 `json:"refused"` // not learned at a limit
	Flushed  uint64 `json:"flushed"`
	Limit    int    `json:"limit"`
	Capacity int    `json:"capacity"` // slots allocated
}

// ARPStats are the neighbour snooping's counters: Neighbours counts both
// families, the NDP and RA ones are IPv6's, the others ARP's.
type ARPStats struct {
	Neighbours    int    `json:"neighbours"`
	Snooped       uint64 `json:"snooped"`
	Suppressed    uint64 `json:"suppressed"`
	GuardDrops    uint64 `json:"guard_drops"`
	Malformed     uint64 `json:"malformed"`
	NDPSnooped    uint64 `json:"ndp_snooped"`     // NS and NA that taught the table
	NDPGuardDrops uint64 `json:"ndp_guard_drops"` // NDP the guard dropped
	RAGuardDrops  uint64 `json:"ra_guard_drops"`  // router advertisements and redirects from pods
	NDPMalformed  uint64 `json:"ndp_malformed"`   // NDP no host would accept
}
