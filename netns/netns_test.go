package netns

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	vns "github.com/vishvananda/netns"
)

func TestCreateReportsCreation(t *testing.T) {
	needRoot(t)
	n, err := Named(uniquePrefix(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Delete() })
	created, err := n.Create()
	if err != nil || !created {
		t.Fatalf("first Create = %v, %v; want true", created, err)
	}
	created, err = n.Create()
	if err != nil || created {
		t.Fatalf("second Create = %v, %v; want false", created, err)
	}
	if names := linkNames(t, n); !slices.Equal(names, []string{"lo"}) {
		t.Fatalf("links in a new netns: %v", names)
	}
	for range 2 {
		if err := n.Delete(); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
	if _, err := os.Stat(n.Path()); err == nil {
		t.Fatal("netns still mounted after Delete")
	}
}

func TestCreateRefusesStaleFile(t *testing.T) {
	needRoot(t)
	n, err := Named(uniquePrefix(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.Path(), nil, 0o444); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(n.Path()) })
	if _, err := n.Create(); err == nil || !strings.Contains(err.Error(), "not a namespace mount") {
		t.Fatalf("Create over a plain file: %v", err)
	}
	if err := n.Delete(); err != nil {
		t.Fatalf("Delete of a plain file: %v", err)
	}
}

// TestCreateDeleteRefuseAPath: a namespace known by path is someone else's.
func TestCreateDeleteRefuseAPath(t *testing.T) {
	n := FromPath("/proc/1/ns/net")
	if _, err := n.Create(); err == nil || err.Error() != `netns "/proc/1/ns/net": not a named namespace` {
		t.Errorf("Create: %v", err)
	}
	if err := n.Delete(); err == nil || err.Error() != `netns "/proc/1/ns/net": not a named namespace` {
		t.Errorf("Delete: %v", err)
	}
}

func TestRunRunsThereAndComesBack(t *testing.T) {
	needRoot(t)
	n := named(t, uniquePrefix(t))
	host, err := vns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	want := errors.New("from fn")
	err = n.Run(func() error {
		inside, err := vns.Get()
		if err != nil {
			return err
		}
		defer inside.Close()
		if inside.Equal(host) {
			t.Error("fn ran in the caller's namespace")
		}
		return want
	})
	if err != want {
		t.Fatalf("Run returned %v, want fn's error", err)
	}
	// Many calls: a thread left behind in the pod namespace would sooner or later
	// run this goroutine.
	for range 50 {
		n.Run(func() error { return nil })
	}
	if _, err := netlink.LinkByName("lo"); err != nil {
		t.Fatal(err)
	}
	now, err := vns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer now.Close()
	if !now.Equal(host) {
		t.Fatal("caller's thread changed namespace")
	}
	err = FromPath("/nonexistent/ns").Run(func() error { return nil })
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), `netns "/nonexistent/ns"`) {
		t.Fatalf("Run on a missing path: %v", err)
	}
}

// TestNetNSCoexistsWithIPNetns: a namespace made here stays removable after
// iproute2's `ip netns add` has set up the directory its own way.
func TestNetNSCoexistsWithIPNetns(t *testing.T) {
	needRoot(t)
	ip, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("no ip(8) to check against")
	}
	p := uniquePrefix(t)
	ours, err := Named(p + "o")
	if err != nil {
		t.Fatal(err)
	}
	theirs := p + "i"
	t.Cleanup(func() {
		ours.Delete()
		exec.Command(ip, "netns", "del", theirs).Run()
	})
	if _, err := ours.Create(); err != nil {
		t.Fatal(err)
	}
	// What makes the two coexist, whatever state the host's directory was
	// in before: it is now a shared mount point of its own (on a host where
	// ip already made it one, the rest of the test alone would prove
	// nothing).
	if !sharedMountPoint(t, Dir) {
		t.Fatalf("%s is not a shared mount point after Create", Dir)
	}
	if out, err := exec.Command(ip, "netns", "add", theirs).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	if err := ours.Delete(); err != nil {
		t.Fatalf("delete after ip netns add: %v", err)
	}
	if _, err := os.Stat(ours.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s still there after delete: %v", ours.Path(), err)
	}
}

// sharedMountPoint says whether dir is a mount point with shared
// propagation, from /proc/self/mountinfo.
func sharedMountPoint(t *testing.T, dir string) bool {
	t.Helper()
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	shared := false
	for _, line := range strings.Split(string(b), "\n") {
		// id parent major:minor root mountpoint options [optional...] - ...
		f := strings.Fields(line)
		if len(f) < 7 || f[4] != dir {
			continue
		}
		shared = false // the last mount on dir is the one that counts
		for _, opt := range f[6:] {
			if opt == "-" {
				break
			}
			shared = shared || strings.HasPrefix(opt, "shared:")
		}
	}
	return shared
}
