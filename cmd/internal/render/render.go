// Package render writes the control API's listings as the tables a person
// reads: ports with counters, the FDB the way `bridge fdb show` prints it,
// the neighbour table the way `ip neigh` does, and switch-wide stats.
package render

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
)

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// Ports writes one row per port. DROPS are the switch's, by reason;
// TAP-DROPS the frames the port's TAP dropped before the switch read them
// ("-" for a gone port).
func Ports(w io.Writer, ports []api.Port) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tNAME\tKIND\tSTATE\tVLAN\tMTU\tFDB\tRX-FRAMES\tRX-BYTES\tTX-FRAMES\tTX-BYTES\tFLOODED\tUNKNOWN\tDROPS\tTAP-DROPS")
	for _, p := range ports {
		c := p.Counters
		id := fmt.Sprint(p.ID)
		if p.ID == 0 {
			id = "-"
		}
		tapDrops := "-"
		if p.DeviceDrops != nil {
			tapDrops = fmt.Sprint(*p.DeviceDrops)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n",
			id, p.Name, p.Kind, p.State, p.PVID, p.MTU, p.FDB, c.RxFrames, c.RxBytes, c.TxFrames, c.TxBytes, c.Flooded, c.Unknown, Drops(c), tapDrops)
	}
	return tw.Flush()
}

// Drops renders the drop counters as "total (reason=n,...)".
func Drops(c api.Counters) string {
	if len(c.Drops) == 0 {
		return "0"
	}
	var total uint64
	keys := make([]string, 0, len(c.Drops))
	for k, v := range c.Drops {
		keys = append(keys, k)
		total += v
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, c.Drops[k])
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ","))
}

// FDB writes one line per entry the way `bridge fdb show` does.
func FDB(w io.Writer, sw string, ents []api.FDBEntry) error {
	for _, e := range ents {
		line := fmt.Sprintf("%s dev %s vlan %d master %s", e.MAC, e.PortName, e.VLAN, sw)
		switch e.Kind {
		case "local":
			line += " permanent"
		case "static":
			line += " static"
		default:
			line += fmt.Sprintf(" used %.1fs", e.Age)
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	return nil
}

// Neighbours writes the table the way `ip neigh` does.
func Neighbours(w io.Writer, ns []api.Neighbour) error {
	for _, n := range ns {
		if _, err := fmt.Fprintf(w, "%s dev %s lladdr %s vlan %d age %.1fs\n", n.IP, n.PortName, n.MAC, n.VLAN, n.Age); err != nil {
			return err
		}
	}
	return nil
}

// Stats writes the switch-wide counters.
func Stats(w io.Writer, st api.Stats) error {
	tw := newTable(w)
	t := st.Totals
	fmt.Fprintf(tw, "switch\t%s\tup %.0fs\n", st.Switch, st.Uptime)
	fmt.Fprintf(tw, "ports\t%d\tpods up %d, gone %d\n", st.Ports, st.PodsUp, st.PodsGone)
	fmt.Fprintf(tw, "traffic\trx %d frames %d bytes\ttx %d frames %d bytes\n", t.RxFrames, t.RxBytes, t.TxFrames, t.TxBytes)
	fmt.Fprintf(tw, "flooded\t%d\tof which unknown unicast %d\n", t.Flooded, t.Unknown)
	fmt.Fprintf(tw, "drops\t%s\n", Drops(t))
	f := st.FDB
	fmt.Fprintf(tw, "fdb\t%d entries (limit %d)\tlearned %d, moved %d, flaps %d, aged %d, evicted %d, refused %d, flushed %d\n",
		f.Entries, f.Limit, f.Learned, f.Moved, f.Flaps, f.Aged, f.Evicted, f.Refused, f.Flushed)
	a := st.ARP
	fmt.Fprintf(tw, "arp\t%d neighbours\tsnooped %d, suppressed %d, guard drops %d, malformed %d\n",
		a.Neighbours, a.Snooped, a.Suppressed, a.GuardDrops, a.Malformed)
	fmt.Fprintf(tw, "ndp\t\tsnooped %d, guard drops %d, router advertisements dropped %d, malformed %d\n",
		a.NDPSnooped, a.NDPGuardDrops, a.RAGuardDrops, a.NDPMalformed)
	return tw.Flush()
}

// Pods writes one row per pod.
func Pods(w io.Writer, pods []api.Pod) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tSTATE\tPORT\tNETNS\tIP\tMAC\tVLAN\tQUEUES")
	for _, p := range pods {
		state := p.State
		if p.Reason != "" {
			state += " (" + p.Reason + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%d\t%d\n", p.Name, state, p.Port, p.Netns, PodIPs(p), p.MAC, p.VLAN, p.Queues)
	}
	return tw.Flush()
}

// PodIPs is a pod's addresses for a table: both of a dual-stack pod's,
// comma-separated (ips; ip from a daemon that predates it).
func PodIPs(p api.Pod) string {
	if len(p.IPs) == 0 {
		return p.IP
	}
	return strings.Join(p.IPs, ",")
}
