package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"

	"golang.org/x/sys/unix"
)

// Machine says where a report was measured.
type Machine struct {
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpu_model"`
	Kernel   string `json:"kernel"`
	GoVer    string `json:"go"`
}

// ReadMachine describes this machine.
func ReadMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVer: runtime.Version()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if m.CPUModel == "" {
		if out, err := exec.Command("lscpu").Output(); err == nil {
			for _, l := range strings.Split(string(out), "\n") {
				if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "Model name" {
					m.CPUModel = strings.TrimSpace(v)
				}
			}
		}
	}
	return m
}

// boundText marks a median whose samples were sender-bound: in all of
// them, or in k of n.
func boundText(st *Stat) string {
	switch {
	case st.SenderBound == 0:
		return ""
	case st.SenderBound == len(st.Samples):
		return " sender-bound"
	default:
		return fmt.Sprintf(" sender-bound %d/%d", st.SenderBound, len(st.Samples))
	}
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes one row per case and metric: each system's median and
// min-max, the tapswitch/bridge ratio and, when Open vSwitch was measured,
// the tapswitch/ovs ratio.
func (r *Report) WriteTable(w io.Writer) error {
	withOVS := slices.Contains(r.Systems, "ovs")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "CASE\tMETRIC\tUNIT")
	for _, s := range r.Systems {
		fmt.Fprintf(tw, "\t%s\t(min-max)", strings.ToUpper(s))
	}
	fmt.Fprintf(tw, "\tTAPSWITCH/BRIDGE")
	if withOVS {
		fmt.Fprintf(tw, "\tTAPSWITCH/OVS")
	}
	fmt.Fprintf(tw, "\n")
	ratio := func(x float64, atLeast bool, other *Stat, better string) {
		switch {
		case other != nil && other.SenderBound > 0:
			fmt.Fprintf(tw, "\t- (sender-bound)")
		case x != 0 && atLeast:
			fmt.Fprintf(tw, "\t>= %.2fx (%s)", x, better)
		case x != 0:
			fmt.Fprintf(tw, "\t%.2fx (%s)", x, better)
		default:
			fmt.Fprintf(tw, "\t-")
		}
	}
	for _, res := range r.Results {
		better := "lower is better"
		if res.HigherBetter {
			better = "higher is better"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s", res.Case, res.Metric, res.Unit)
		for _, s := range r.Systems {
			st := res.Systems[s]
			if st == nil {
				fmt.Fprintf(tw, "\t-\t")
				continue
			}
			fmt.Fprintf(tw, "\t%s%s\t%s-%s", fmtNum(st.Median), boundText(st), fmtNum(st.Min), fmtNum(st.Max))
		}
		ratio(res.Ratio, res.RatioAtLeast, res.Systems["bridge"], better)
		if withOVS {
			ratio(res.OVSRatio, res.RatioOVSAtLeast, res.Systems["ovs"], better)
		}
		fmt.Fprintf(tw, "\n")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if slices.ContainsFunc(r.Results, func(res Result) bool {
		return slices.ContainsFunc(slices.Collect(maps.Values(res.Systems)), func(st *Stat) bool { return st.SenderBound > 0 })
	}) {
		fmt.Fprintf(w, "note: sender-bound: the traffic engine's sender, not the system, set that rate with the machine's CPUs under %.0f%% busy (the system's is higher); no ratio is taken against it\n", 100*MachineBoundShare)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	return nil
}
