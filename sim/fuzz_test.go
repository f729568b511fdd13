package sim

import (
	"testing"
)

// FuzzParseScenario: the parser and the builder never panic, whatever the
// input; what parses and builds also runs (briefly) without panicking.
func FuzzParseScenario(f *testing.F) {
	for _, name := range Shipped() {
		b, err := ShippedSource(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(goodBase))
	f.Add([]byte(goodBase + "  - {a: pod1, b: cbr0, latncy: 1ms}\n"))
	f.Add([]byte("switches: [{name: s, ports: [{name: t, trunk: true, allowed: [10, 20]}]}]\n"))
	f.Add([]byte("hosts:\n  - &h {name: a, ip: 10.0.0.1/24}\n  - *h\n"))
	f.Add([]byte("timeline:\n  - {at: 1s, wait: 2s}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := Parse("fuzz.yaml", data)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %T is not *Error: %v", err, err)
			}
			return
		}
		s, err := New(sc, Options{MaxEvents: 2000})
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("build error %T is not *Error: %v", err, err)
			}
			return
		}
		if _, err := s.Run(); err != nil {
			t.Fatal(err)
		}
	})
}
