package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clkTck is USER_HZ, 100 on every Linux architecture Go supports here.
const clkTck = 100

// ProcCPU is a process's user+system CPU seconds from /proc/PID/stat; an
// error once the process has gone.
func ProcCPU(pid int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; fields resume after its ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	// Fields 14 and 15 of stat(5), utime and stime; f[0] is field 3.
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return float64(u+s) / clkTck, nil
}

// CPUTimes is the time all CPUs together spent in each state since boot,
// in seconds, from the first line of /proc/stat.
type CPUTimes struct {
	User, Nice, System, Idle, IOWait, IRQ, SoftIRQ float64
}

// Busy is the time not idle: user, nice, system, irq and softirq, which
// includes the kernel bridge's forwarding in softirq.
func (c CPUTimes) Busy() float64 { return c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ }

// ReadCPUTimes reads the machine's CPU times from /proc/stat.
func ReadCPUTimes() (CPUTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return CPUTimes{}, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq ...
	if len(f) < 8 || f[0] != "cpu" {
		return CPUTimes{}, fmt.Errorf("/proc/stat: unexpected format")
	}
	var v [7]float64
	for i := range v {
		n, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			return CPUTimes{}, fmt.Errorf("/proc/stat: %w", err)
		}
		v[i] = float64(n) / clkTck
	}
	return CPUTimes{User: v[0], Nice: v[1], System: v[2], Idle: v[3], IOWait: v[4], IRQ: v[5], SoftIRQ: v[6]}, nil
}

// cpuMeter samples a switch process and the machine at the start and the
// end of a measured window.
type cpuMeter struct {
	pid            int
	proc0, proc1   float64
	mach0, mach1   float64 // the machine's busy CPU seconds (CPUTimes.Busy)
	idle0, idle1   float64 // and its idle ones, iowait included
	procOK, machOK bool
}

func (m *cpuMeter) mark(start bool) {
	p, perr := 0.0, error(nil)
	if m.pid > 0 {
		p, perr = ProcCPU(m.pid)
	}
	c, merr := ReadCPUTimes()
	if start {
		m.proc0, m.mach0, m.idle0 = p, c.Busy(), c.Idle+c.IOWait
		m.procOK, m.machOK = m.pid > 0 && perr == nil, merr == nil
		return
	}
	m.proc1, m.mach1, m.idle1 = p, c.Busy(), c.Idle+c.IOWait
	m.procOK = m.procOK && perr == nil
	m.machOK = m.machOK && merr == nil
}

// busy is the share of the machine's CPU time that was busy over the
// window, 0 to 1, and whether it was measured: /proc/stat's busy time
// against its busy and idle time together, all CPUs.
func (m *cpuMeter) busy() (float64, bool) {
	if m == nil || !m.machOK {
		return 0, false
	}
	busy, idle := m.mach1-m.mach0, m.idle1-m.idle0
	if busy+idle <= 0 {
		return 0, false
	}
	return busy / (busy + idle), true
}
