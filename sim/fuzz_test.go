package sim

import (
	"strings"
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

// FuzzSweepArgs: the --set and --seeds parsers and the key resolution never
// panic; what they accept is either applied to a shipped scenario or
// refused with an error naming the key.
func FuzzSweepArgs(f *testing.F) {
	for _, s := range []string{"fdb.limit=1024,4096,16384", "switches.cbr0.ports.pod1.storm=1,2", "cbr0.arp.suppress=true,false",
		"a=[1,2],{x: 1}", `k="a,b",'c'`, "timeline.0.ping.count=3", "links.*.loss=1%", "x..y=1", "=", "a=[", "seed=1"} {
		f.Add(s, "1-50")
	}
	f.Add("table_limit=5", "1,3,5-7")
	f.Add("run.duration=1s", "18446744073709551615")
	src, err := ShippedSource("mac-flood-stop")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, set, seeds string) {
		if ss, err := ParseSeeds(seeds); err == nil {
			seen := map[uint64]bool{}
			for _, s := range ss {
				if seen[s] {
					t.Fatalf("ParseSeeds(%q): %d twice", seeds, s)
				}
				seen[s] = true
			}
		}
		p, err := ParseSet(set)
		if err != nil {
			return
		}
		if len(p.Values) == 0 {
			t.Fatalf("ParseSet(%q): no values and no error", set)
		}
		if len(p.Values) > 4 {
			p.Values = p.Values[:4]
		}
		sw, err := NewSweep("mac-flood-stop.yaml", src, []Param{p}, nil)
		if err != nil {
			if !strings.Contains(err.Error(), p.Key) {
				t.Fatalf("error does not name the key %q: %v", p.Key, err)
			}
			return
		}
		if len(sw.Points) != len(p.Values) {
			t.Fatalf("%d points for %d values", len(sw.Points), len(p.Values))
		}
	})
}
