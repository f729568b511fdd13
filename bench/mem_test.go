package bench

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestReadRSS(t *testing.T) {
	r, err := ReadRSS(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if r.Now <= 0 || r.Peak < r.Now {
		t.Fatalf("VmRSS %d KiB, VmHWM %d KiB: want 0 < RSS <= peak", r.Now, r.Peak)
	}
	if _, err := ReadRSS(-1); err == nil {
		t.Error("ReadRSS(-1): no error")
	}
}

// TestResetPeakRSS checks that a reset brings the peak back down after an
// unmapped region raised it, which is what makes a round's peak its own.
// The region is mmapped directly, because the Go heap need not hand freed
// memory back.
func TestResetPeakRSS(t *testing.T) {
	const size = 64 << 20
	m, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < size; i += 4096 {
		m[i] = 1
	}
	high, err := ReadRSS(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Munmap(m); err != nil {
		t.Fatal(err)
	}
	if err := resetPeakRSS(os.Getpid()); err != nil {
		t.Skipf("clear_refs: %v (kernel before 4.0?)", err)
	}
	after, err := ReadRSS(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after.Peak > high.Peak-size/1024/2 {
		t.Errorf("VmHWM %d KiB after unmapping 64 MiB and a reset; %d KiB before", after.Peak, high.Peak)
	}
}

func TestWriteTableOVSRatio(t *testing.T) {
	rep := &Report{
		Systems: []string{"bridge", "tapswitch", "ovs"},
		Results: []Result{{
			Case: "tcp1", Metric: "throughput", Unit: "Gbit/s", HigherBetter: true,
			Systems: map[string]*Stat{
				"bridge": {Median: 20, Min: 20, Max: 20}, "tapswitch": {Median: 16, Min: 16, Max: 16},
				"ovs": {Median: 2, Min: 2, Max: 2},
			},
			Ratio: 0.8, OVSRatio: 8,
		}},
	}
	var b bytes.Buffer
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"TAPSWITCH/OVS", "0.80x (higher is better)", "8.00x (higher is better)"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	rep.Systems = rep.Systems[:2]
	b.Reset()
	rep.WriteTable(&b)
	if strings.Contains(b.String(), "OVS") {
		t.Errorf("table without ovs has an OVS column:\n%s", b.String())
	}
}
