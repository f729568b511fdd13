package netns

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

// ifNameCases: what CheckIfName says, and what the kernel says when a
// link is renamed so ("" where the test does not ask it).
var ifNameCases = []struct {
	name   string
	ok     bool
	kernel string
}{
	{"eth0", true, "yes"},
	{"net1", true, "yes"},
	{"a.b-c_d@e", true, "yes"},
	{"~", true, "yes"},
	{strings.Repeat("x", 15), true, "yes"},
	{strings.Repeat("x", 16), false, "no"},
	{"", false, ""},
	{".", false, "no"},
	{"..", false, "no"},
	{"...", true, "yes"},
	{"a/b", false, "no"},
	{"/", false, "no"},
	{"a:b", false, "no"},
	{"a b", false, "no"},
	{"a\tb", false, "no"},
	{"a\nb", false, "no"},
	{"a\x00b", false, ""},
	{"a\x01b", false, "yes"},
	{"a\x7fb", false, "yes"},
	{"ethé", false, "yes"},                     // non-ASCII: the kernel takes it
	{"ä" + strings.Repeat("x", 13), false, ""}, // 15 bytes, 14 characters
	{"eth\xff", false, "yes"},                  // not UTF-8
	{"eth\u00a00", false, "no"},                // the kernel's isspace(0xa0)
}

func TestCheckIfName(t *testing.T) {
	for _, tc := range ifNameCases {
		err := CheckIfName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("CheckIfName(%q) = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
	for _, tc := range []struct{ name, want string }{
		{"", "want 1-15 bytes, not 0"},
		{strings.Repeat("x", 16), "want 1-15 bytes, not 16"},
		{"..", `"." and ".." are not interface names`},
		{"a b", `character ' ' not allowed: want printable ASCII other than '/' and ':'`},
		{"ethé", `character 'é' not allowed`},
		{"a/b", `character '/' not allowed`},
	} {
		if err := CheckIfName(tc.name); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("CheckIfName(%q) = %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestCheckIfNameAgainstKernel renames a fresh namespace's loopback to
// each name: every name CheckIfName accepts the kernel takes, and what the
// table says the kernel refuses it refuses.
func TestCheckIfNameAgainstKernel(t *testing.T) {
	needRoot(t)
	n := named(t, uniquePrefix(t))
	err := n.Run(func() error {
		for _, tc := range ifNameCases {
			if tc.kernel == "" {
				continue
			}
			lo, err := netlink.LinkByIndex(1)
			if err != nil {
				return err
			}
			err = netlink.LinkSetName(lo, tc.name)
			if got := err == nil; got != (tc.kernel == "yes") {
				t.Errorf("kernel rename to %q: %v, want taken %v", tc.name, err, tc.kernel == "yes")
			}
			if err == nil && CheckIfName(tc.name) == nil {
				if l, err := netlink.LinkByName(tc.name); err != nil || l.Attrs().Index != 1 {
					t.Errorf("renamed to %q, not found by that name: %v", tc.name, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// FuzzCheckIfName: CheckIfName accepts exactly the names its doc states.
func FuzzCheckIfName(f *testing.F) {
	for _, tc := range ifNameCases {
		f.Add(tc.name)
	}
	f.Fuzz(func(t *testing.T, name string) {
		want := len(name) >= 1 && len(name) <= MaxIfName && name != "." && name != ".."
		for i := 0; i < len(name); i++ {
			if c := name[i]; c < '!' || c > '~' || c == '/' || c == ':' {
				want = false
			}
		}
		if err := CheckIfName(name); (err == nil) != want {
			t.Fatalf("CheckIfName(%q) = %v, want ok %v", name, err, want)
		}
	})
}

// FuzzParse: Parse never panics; what it accepts resolves to a clean path,
// a named one in a namespace directory, and an absolute one parses again
// to itself; what it refuses it names.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"web-1", "/var/run/netns/web-1", "/run/netns/x/", "/proc/1/ns/net", "a/../..", "", ".", "..", "//", "/var/run/netns/.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		n, err := Parse(ref)
		if err != nil {
			if ref != "" && !strings.Contains(err.Error(), strconv.Quote(ref)) {
				t.Fatalf("Parse(%q): %v does not name the input", ref, err)
			}
			return
		}
		if n.String() != ref || n.Path() == "" || n.Path() != filepath.Clean(n.Path()) {
			t.Fatalf("Parse(%q) = ref %q path %q", ref, n.String(), n.Path())
		}
		if name := n.Name(); name != "" {
			if dir := filepath.Dir(n.Path()); dir != Dir && dir != "/run/netns" || filepath.Base(n.Path()) != name {
				t.Fatalf("Parse(%q): name %q at %q", ref, name, n.Path())
			}
			if _, err := Named(name); err != nil {
				t.Fatalf("Parse(%q): name %q: %v", ref, name, err)
			}
		}
		if !filepath.IsAbs(n.Path()) {
			return // relative to the working directory, as the caller gave it
		}
		again, err := Parse(n.Path())
		if err != nil || again.Path() != n.Path() || again.Name() != n.Name() {
			t.Fatalf("Parse(%q) = %q %q, but Parse(%q) = %q %q, %v", ref, n.Path(), n.Name(), n.Path(), again.Path(), again.Name(), err)
		}
	})
}
