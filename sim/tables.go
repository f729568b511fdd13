package sim

import (
	"sort"

	"github.com/tapswitch/tapswitch/fdb"
)

// FDBRow is one forwarding-table entry at the end of a run, by names: what
// `tapswitch sim --compare` sets beside the real daemon's table.
type FDBRow struct {
	Switch string `json:"switch"`
	MAC    string `json:"mac"`
	VLAN   uint16 `json:"vlan"`
	Port   string `json:"port"`
}

// NeighbourRow is one snooped neighbour at the end of a run, by names.
type NeighbourRow struct {
	Switch string `json:"switch"`
	IP     string `json:"ip"`
	MAC    string `json:"mac"`
	VLAN   uint16 `json:"vlan"`
	Port   string `json:"port"`
}

// Tables lists every switch's learned FDB entries that have not aged out
// and its snooped neighbours, as they stand now (after Run: at the end),
// sorted. Entries past their ageing are left out, as the fdb assertion
// treats them.
func (s *Sim) Tables() ([]FDBRow, []NeighbourRow) {
	var fr []FDBRow
	var nr []NeighbourRow
	for _, n := range s.switches {
		ageing := int64(n.spec.Ageing)
		for _, e := range n.sw.FDB().Entries() {
			if e.Kind != fdb.Learned {
				continue
			}
			if ageing > 0 && s.now-e.LastSeen >= ageing {
				continue
			}
			_, port := splitRef(n.portName(e.Port))
			fr = append(fr, FDBRow{Switch: n.name, MAC: fdb.MACFrom(e.MAC).String(), VLAN: e.VLAN, Port: port})
		}
		for _, nb := range n.sw.ARP().Neighbours() {
			_, port := splitRef(n.portName(nb.Port))
			nr = append(nr, NeighbourRow{Switch: n.name, IP: nb.IP.String(), MAC: nb.MAC.String(), VLAN: nb.VLAN, Port: port})
		}
	}
	SortTables(fr, nr)
	return fr, nr
}

// SortTables orders rows by switch, VLAN and MAC (neighbours by switch and
// IP), so two tables compare row by row.
func SortTables(fr []FDBRow, nr []NeighbourRow) {
	sort.Slice(fr, func(i, j int) bool {
		a, b := fr[i], fr[j]
		if a.Switch != b.Switch {
			return a.Switch < b.Switch
		}
		if a.VLAN != b.VLAN {
			return a.VLAN < b.VLAN
		}
		return a.MAC < b.MAC
	})
	sort.Slice(nr, func(i, j int) bool {
		a, b := nr[i], nr[j]
		if a.Switch != b.Switch {
			return a.Switch < b.Switch
		}
		return a.IP < b.IP
	})
}

// Describe is the assertion's text as results show it ("ping p1 delivered
// == 3 since 2s"), the key by which a run on another dataplane is set
// beside the simulator's.
func (a *Assertion) Describe() string {
	c := &check{spec: a, isFlow: a.Flow != ""}
	return c.describe()
}

// Holds says whether v satisfies the comparison.
func (c Cmp) Holds(v float64) bool { return c.ok(v) }

// FrameTypes are the names of the frames check's types, "all" first.
func FrameTypes() []string { return frameTypeNames[:] }

// NumFrameTypes is the number of FrameTypes.
const NumFrameTypes = numFrameTypes

// CountFrame adds one Ethernet frame to c under each of FrameTypes it is
// (all, broadcast or unicast, ARP and its op, ICMP, UDP), as the frames
// check counts them.
func CountFrame(c *[NumFrameTypes]uint64, f []byte) { count(c, f) }

// SafeName is name as a pcap file's name: characters other than letters,
// digits, '-', '.' and '_' become '_'.
func SafeName(name string) string { return captureName(name) }
