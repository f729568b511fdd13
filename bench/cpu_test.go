package bench

import (
	"testing"
	"time"
)

// TestCPUMeterBusy: over a window in which this test keeps a CPU busy,
// the meter reads the machine's /proc/stat and finds it at least partly
// busy, and never more than wholly.
func TestCPUMeterBusy(t *testing.T) {
	m := &cpuMeter{}
	m.mark(true)
	for end := time.Now().Add(200 * time.Millisecond); time.Now().Before(end); {
	}
	m.mark(false)
	b, ok := m.busy()
	if !ok {
		t.Fatalf("no busy share measured: %+v", m)
	}
	if b <= 0 || b > 1 {
		t.Errorf("busy share %v over a window with a CPU spinning, want in (0, 1]", b)
	}
}
