package daemon

import (
	"testing"
	"time"
)

// The read limit lets a slot's budget through and then asks the reader to
// sleep out the slot; the next slot starts afresh.
func TestPolicer(t *testing.T) {
	p := newPolicer(10000) // 100 frames per 10 ms slot
	// Start at the beginning of a slot so the test does not straddle two.
	time.Sleep(time.Duration(policeSlot - time.Now().UnixNano()%policeSlot))
	if d := p.charge(64); d != 0 {
		t.Fatalf("64 of 100: sleep %v", d)
	}
	if d := p.charge(36); d != 0 {
		t.Fatalf("100 of 100: sleep %v", d)
	}
	d := p.charge(1)
	if d <= 0 || d > time.Duration(policeSlot) {
		t.Fatalf("101 of 100: sleep %v, want the rest of the slot", d)
	}
	time.Sleep(d)
	if d := p.charge(50); d != 0 {
		t.Fatalf("next slot: sleep %v", d)
	}
}
