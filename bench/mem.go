package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// DaemonProcess is implemented by a topology whose switch is a process the
// bench started and only it uses (the tapswitch child), so that its memory
// is the switch's alone and the bench may reset its peak.
type DaemonProcess interface {
	DaemonPID() int // 0: none (e.g. the daemon runs in the bench's process)
}

// RSS is a process's resident set from /proc/PID/status, in KiB: its peak
// (VmHWM) and its current size (VmRSS).
type RSS struct{ Peak, Now int64 }

// ReadRSS reads pid's RSS.
func ReadRSS(pid int) (RSS, error) {
	path := "/proc/" + strconv.Itoa(pid) + "/status"
	b, err := os.ReadFile(path)
	if err != nil {
		return RSS{}, err
	}
	var r RSS
	var seen int
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmHWM" && k != "VmRSS") {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return RSS{}, fmt.Errorf("%s: %s %q: unexpected format", path, k, v)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return RSS{}, fmt.Errorf("%s: %s %q: %w", path, k, v, err)
		}
		if k == "VmHWM" {
			r.Peak = n
		} else {
			r.Now = n
		}
		seen++
	}
	if seen != 2 {
		return RSS{}, fmt.Errorf("%s: no VmHWM and VmRSS", path)
	}
	return r, nil
}

// resetPeakRSS makes VmHWM start again from the current RSS (proc(5),
// clear_refs "5"), so that a round's peak is its own and not the largest
// since the daemon started. Without it (kernels before 4.0) the peak is
// the process's lifetime one, still an upper bound.
func resetPeakRSS(pid int) error {
	return os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0)
}

// rssMetrics are the daemon's peak and final RSS over a round, in MiB.
func rssMetrics(r RSS) []Metric {
	return []Metric{
		{"daemon peak RSS", "MiB", false, float64(r.Peak) / 1024, false},
		{"daemon RSS at end", "MiB", false, float64(r.Now) / 1024, false},
	}
}
