package dataplane

import (
	"testing"
	"time"
)

// The read limit lets a slot's budget through and then asks the reader to
// sleep out the slot; the next slot starts afresh.
func TestPolicer(t *testing.T) {
	p := newPolicer(10000) // 100 frames per 10 ms slot
	const policeSlot = int64(policeSlot)
	slot := 7 * policeSlot // the start of some slot
	if d := p.Charge(64, slot+1); d != 0 {
		t.Fatalf("64 of 100: sleep %v", d)
	}
	if d := p.Charge(36, slot+2); d != 0 {
		t.Fatalf("100 of 100: sleep %v", d)
	}
	now := slot + int64(3*time.Millisecond)
	if d := p.Charge(1, now); d != time.Duration(slot+policeSlot-now) {
		t.Fatalf("101 of 100, 3 ms into the slot: sleep %v, want the rest of the slot (7ms)", d)
	}
	if d := p.Charge(50, slot+policeSlot); d != 0 {
		t.Fatalf("next slot: sleep %v", d)
	}
	if d := p.Charge(51, slot+policeSlot+1); d == 0 {
		t.Fatal("101 in the next slot: no sleep")
	}
}
