package netns

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func TestCreateNetNSReportsCreation(t *testing.T) {
	needRoot(t)
	name := uniquePrefix(t)
	t.Cleanup(func() { DeleteNetNS(name) })
	created, err := CreateNetNS(name)
	if err != nil || !created {
		t.Fatalf("first CreateNetNS = %v, %v; want true", created, err)
	}
	created, err = CreateNetNS(name)
	if err != nil || created {
		t.Fatalf("second CreateNetNS = %v, %v; want false", created, err)
	}
	if names := linkNames(t, NetNSPath(name)); !slices.Equal(names, []string{"lo"}) {
		t.Fatalf("links in a new netns: %v", names)
	}
	for range 2 {
		if err := DeleteNetNS(name); err != nil {
			t.Fatalf("DeleteNetNS: %v", err)
		}
	}
	if _, err := os.Stat(NetNSPath(name)); err == nil {
		t.Fatal("netns still mounted after DeleteNetNS")
	}
}

func TestCreateNetNSRefusesStaleFile(t *testing.T) {
	needRoot(t)
	name := uniquePrefix(t)
	if err := os.MkdirAll(NetNSDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(NetNSPath(name), nil, 0o444); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(NetNSPath(name)) })
	if _, err := CreateNetNS(name); err == nil || !strings.Contains(err.Error(), "not a namespace mount") {
		t.Fatalf("CreateNetNS over a plain file: %v", err)
	}
	if err := DeleteNetNS(name); err != nil {
		t.Fatalf("DeleteNetNS of a plain file: %v", err)
	}
}

func TestInNamespaceRunsThereAndComesBack(t *testing.T) {
	needRoot(t)
	name := uniquePrefix(t)
	t.Cleanup(func() { DeleteNetNS(name) })
	if _, err := CreateNetNS(name); err != nil {
		t.Fatal(err)
	}
	host, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	want := errors.New("from fn")
	err = InNamespace(NetNSPath(name), func() error {
		inside, err := netns.Get()
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
		t.Fatalf("InNamespace returned %v, want fn's error", err)
	}
	// Many calls: a thread left behind in the pod namespace would sooner or later
	// run this goroutine.
	for range 50 {
		InNamespace(NetNSPath(name), func() error { return nil })
	}
	if _, err := netlink.LinkByName("lo"); err != nil {
		t.Fatal(err)
	}
	now, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer now.Close()
	if !now.Equal(host) {
		t.Fatal("caller's thread changed namespace")
	}
	if err := InNamespace("/nonexistent/ns", func() error { return nil }); err == nil || !strings.Contains(err.Error(), `netns "/nonexistent/ns"`) {
		t.Fatalf("InNamespace on a missing path: %v", err)
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
	ours, theirs := uniquePrefix(t)+"o", uniquePrefix(t)+"i"
	t.Cleanup(func() {
		DeleteNetNS(ours)
		exec.Command(ip, "netns", "del", theirs).Run()
	})
	if _, err := CreateNetNS(ours); err != nil {
		t.Fatal(err)
	}
	// What makes the two coexist, whatever state the host's directory was
	// in before: it is now a shared mount point of its own (on a host where
	// ip already made it one, the rest of the test alone would prove
	// nothing).
	if !sharedMountPoint(t, NetNSDir) {
		t.Fatalf("%s is not a shared mount point after CreateNetNS", NetNSDir)
	}
	if out, err := exec.Command(ip, "netns", "add", theirs).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	if err := DeleteNetNS(ours); err != nil {
		t.Fatalf("delete after ip netns add: %v", err)
	}
	if _, err := os.Stat(NetNSPath(ours)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s still there after delete: %v", NetNSPath(ours), err)
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
