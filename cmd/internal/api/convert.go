package api

import (
	"time"

	"github.com/tapswitch/tapswitch/arp"
	"github.com/tapswitch/tapswitch/fdb"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

// The one place where the core packages' types become the API's. A field
// added to a core type reaches the API only when it is added here (and to
// the wire type and wire_test.go's pinned JSON).

// PortFrom is a switch port as the API shows it; the caller adds what the
// switch does not know (Kind, State, addresses, DeviceDrops).
func PortFrom(pi vswitch.PortInfo) Port {
	return Port{
		ID: pi.ID, Name: pi.Name, PVID: pi.PVID, Trunk: pi.Trunk, Allowed: pi.Allowed, Hairpin: pi.Hairpin,
		MTU: pi.MTU, Storm: pi.Storm, LockMAC: pi.LockMAC, FDB: pi.FDB, Counters: CountersFrom(pi.Counters),
	}
}

// CountersFrom is a port's (or the summed) counters; the drops by reason
// are c.DropMap, the non-zero reasons by name.
func CountersFrom(c vswitch.Counters) Counters {
	return Counters{
		RxFrames: c.RxFrames, RxBytes: c.RxBytes, TxFrames: c.TxFrames, TxBytes: c.TxBytes,
		Flooded: c.Flooded, Unknown: c.Unknown, Drops: c.DropMap,
	}
}

// FDBStatsFrom is the forwarding table's counters.
func FDBStatsFrom(s fdb.Stats) FDBStats {
	return FDBStats{
		Entries: s.Entries, Learned: s.Learned, Moved: s.Moved, Flaps: s.Flaps, Aged: s.Aged,
		Evicted: s.Evicted, Refused: s.Refused, Flushed: s.Flushed, Limit: s.Limit, Capacity: s.Capacity,
	}
}

// ARPStatsFrom is the neighbour snooping's counters.
func ARPStatsFrom(s arp.Stats) ARPStats {
	return ARPStats{
		Neighbours: s.Neighbours, Snooped: s.Snooped, Suppressed: s.Suppressed, GuardDrops: s.GuardDrops,
		Malformed: s.Malformed, NDPSnooped: s.NDPSnooped, NDPGuardDrops: s.NDPGuardDrops,
		RAGuardDrops: s.RAGuardDrops, NDPMalformed: s.NDPMalformed,
	}
}

// FDBEntryFrom is one forwarding table row; portName names e.Port, now is
// the switch's clock (for a learned entry's age).
func FDBEntryFrom(e fdb.Entry, portName string, now int64) FDBEntry {
	fe := FDBEntry{MAC: fdb.MACFrom(e.MAC), VLAN: e.VLAN, Port: e.Port, PortName: portName, Kind: e.Kind.String()}
	if e.Kind == fdb.Learned {
		fe.Age = age(now, e.LastSeen)
	}
	return fe
}

// NeighbourFrom is one snooped binding; portName names n.Port, now is the
// switch's clock.
func NeighbourFrom(n arp.Neighbour, portName string, now int64) Neighbour {
	return Neighbour{IP: n.IP, MAC: n.MAC, VLAN: n.VLAN, Port: n.Port, PortName: portName, Age: age(now, n.LastSeen)}
}

// age is the seconds from last to now, to the millisecond; 0 when last is
// unknown or in the future.
func age(now, last int64) float64 {
	if last == 0 || now < last {
		return 0
	}
	return float64(time.Duration(now-last).Milliseconds()) / 1000
}
