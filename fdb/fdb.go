// Package fdb is the switch's MAC forwarding table: which port a (VLAN, MAC)
// lives behind, for how long, and what happens when the table is full.
//
// Every rule about entries lives here: learning, moves and flapping, ageing,
// the global and per-port limits with their policy, flushes, counters and
// change events. Lookups and refreshes of known entries take no lock; inserts,
// moves and deletions serialise on one mutex, which the frame path only meets
// when a new MAC appears.
package fdb

import (
	"fmt"
	"net"
	"time"
)

// PortID names a switch port. 0 is never a valid port.
type PortID uint32

// Kind says where an entry came from.
type Kind uint8

const (
	// Learned entries come from frames' source addresses; they age and count
	// against the limits.
	Learned Kind = iota
	// Static entries are configured; they never age, never move and do not
	// count against the limits.
	Static
	// Local entries are the switch's own addresses (a gateway port's MAC);
	// like Static, but reported separately as `bridge fdb` does.
	Local
)

func (k Kind) String() string {
	switch k {
	case Learned:
		return "learned"
	case Static:
		return "static"
	case Local:
		return "local"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Policy says what Learn does with a new MAC when a limit is reached.
type Policy uint8

const (
	// StopLearning refuses new entries at the limit, like the Linux bridge's
	// fdb_max_learned. Frames to refused MACs are flooded.
	StopLearning Policy = iota
	// EvictFair evicts the least recently used entry of the port that holds
	// the most entries, like Open vSwitch's mac-learning: a port flooding
	// random source MACs only ever evicts its own entries.
	EvictFair
)

func (p Policy) String() string {
	switch p {
	case StopLearning:
		return "stop-learning"
	case EvictFair:
		return "evict-fair"
	}
	return fmt.Sprintf("policy(%d)", uint8(p))
}

// ParsePolicy accepts "stop-learning" and "evict-fair".
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "stop-learning":
		return StopLearning, nil
	case "evict-fair":
		return EvictFair, nil
	}
	return 0, fmt.Errorf("fdb policy %q: want stop-learning or evict-fair", s)
}

// MarshalText lets configs and JSON carry the policy by name.
func (p Policy) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText is the inverse of MarshalText.
func (p *Policy) UnmarshalText(b []byte) error {
	v, err := ParsePolicy(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// MaxVLAN is the largest VLAN ID a key can hold (12 bits).
const MaxVLAN = 4095

// Defaults, from the Linux bridge (ageing) and Open vSwitch (table size).
const (
	DefaultAgeing = 300 * time.Second
	DefaultLimit  = 8192
)

// Flapping: a MAC that moves FlapMoves times within FlapWindow is reported
// as flapping. A host that migrates moves once; a MAC seen alternately on two
// ports is a loop or a spoofer, and an operator wants to hear about it.
const (
	FlapMoves  = 3
	FlapWindow = 10 * time.Second
)

// Config sets a table up. The zero value is not useful; start from
// DefaultConfig.
type Config struct {
	// Ageing is how long a learned entry lives without a frame from its MAC.
	// 0 means entries never age.
	Ageing time.Duration
	// Limit bounds the learned entries of the whole table (not static ones).
	Limit int
	// PortLimit bounds the learned entries of each port; 0 means no per-port
	// bound. A port's own limit (AddPort) overrides it.
	PortLimit int
	// Policy is what happens at a limit.
	Policy Policy
}

// DefaultConfig is 300 s ageing, 8192 entries, stop-learning.
func DefaultConfig() Config {
	return Config{Ageing: DefaultAgeing, Limit: DefaultLimit, Policy: StopLearning}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	if c.Ageing < 0 {
		return fmt.Errorf("fdb ageing %v: must not be negative", c.Ageing)
	}
	if c.Limit < 1 {
		return fmt.Errorf("fdb limit %d: must be at least 1", c.Limit)
	}
	if c.Limit > 1<<26 {
		return fmt.Errorf("fdb limit %d: at most %d", c.Limit, 1<<26)
	}
	if c.PortLimit < 0 {
		return fmt.Errorf("fdb port limit %d: must not be negative", c.PortLimit)
	}
	if c.Policy != StopLearning && c.Policy != EvictFair {
		return fmt.Errorf("fdb policy %d: unknown", c.Policy)
	}
	return nil
}

// Entry is one row of the table as Walk reports it.
type Entry struct {
	VLAN     uint16
	MAC      net.HardwareAddr
	Port     PortID
	Kind     Kind
	LastSeen int64 // clock nanoseconds; 0 for static and local entries
}

// Result says what Learn did.
type Result uint8

const (
	// Refreshed: the entry existed on this port; its last-seen time moved on.
	Refreshed Result = iota
	// Inserted: a new entry.
	Inserted
	// Moved: the entry existed on another port and now points here.
	Moved
	// Refused: not learned (table or port full under stop-learning, or the
	// port is not registered).
	Refused
	// Ignored: multicast, broadcast or all-zero source, or a static entry
	// that learning must not override.
	Ignored
)

func (r Result) String() string {
	return [...]string{"refreshed", "inserted", "moved", "refused", "ignored"}[r]
}

// Stats are the table's counters, as an operator reads them.
type Stats struct {
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
