package crashpoint

import "testing"

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		name string
		n    int
		ok   bool
	}{
		{"add-netns:2", "add-netns", 2, true},
		{"add-netns:0", "", 0, false},
		{"add-netns", "", 0, false},
		{":3", "", 0, false},
		{"", "", 0, false},
		{"x:-1", "", 0, false},
	} {
		name, n, ok := Parse(c.in)
		if name != c.name || n != c.n || ok != c.ok {
			t.Errorf("Parse(%q) = %q %d %v, want %q %d %v", c.in, name, n, ok, c.name, c.n, c.ok)
		}
	}
}

func TestHitUnsetIsInert(t *testing.T) {
	point, at = "", 0
	Hit("anything") // must return
}

func FuzzParse(f *testing.F) {
	f.Add("add-netns:2")
	f.Add("::")
	f.Fuzz(func(t *testing.T, s string) {
		name, n, ok := Parse(s)
		if ok && (name == "" || n < 1) {
			t.Fatalf("Parse(%q) = %q %d ok", s, name, n)
		}
	})
}
