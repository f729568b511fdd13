package simreal

import (
	"testing"

	"github.com/tapswitch/tapswitch/sim"
)

// FuzzCheck feeds Check every scenario the simulator's parser accepts: it
// must answer (realisable or a refusal naming a line) and never panic or
// hang.
func FuzzCheck(f *testing.F) {
	for _, name := range sim.Shipped() {
		if b, err := sim.ShippedSource(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(base))
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := sim.Parse("f.yaml", data)
		if err != nil {
			return
		}
		if err := Check(sc); err != nil && !IsRefusal(err) {
			t.Fatalf("%v: not a refusal", err)
		}
	})
}
