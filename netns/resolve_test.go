package netns

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		ref, path, name, err string
	}{
		{ref: "web-1", path: "/var/run/netns/web-1", name: "web-1"},
		{ref: "/var/run/netns/web-1", path: "/var/run/netns/web-1", name: "web-1"},
		{ref: "/run/netns//web-1/", path: "/run/netns/web-1", name: "web-1"},
		{ref: "/var/run/netns/../web-1", path: "/var/run/web-1"},
		{ref: "/var/run/netns/a/b", path: "/var/run/netns/a/b"},
		{ref: "/proc/42/ns/net", path: "/proc/42/ns/net"},
		{ref: "/proc/42/ns/net/", path: "/proc/42/ns/net"},
		{ref: "relative/ns", path: "relative/ns"},
		{ref: "", err: "no netns"},
		{ref: ".", err: `netns ".": invalid name`},
		{ref: "..", err: `netns "..": invalid name`},
	} {
		n, err := Parse(tc.ref)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("Parse(%q) = %+v, %v; want error %q", tc.ref, n, err, tc.err)
			}
			continue
		}
		if err != nil || n.Path() != tc.path || n.Name() != tc.name || n.String() != tc.ref {
			t.Errorf("Parse(%q) = path %q name %q ref %q, %v; want path %q name %q", tc.ref, n.Path(), n.Name(), n.String(), err, tc.path, tc.name)
		}
	}
	if _, err := Named("a/b"); err == nil || err.Error() != `netns "a/b": invalid name` {
		t.Errorf("Named(a/b): %v", err)
	}
}

// TestIDRefusesWhatIsNoNetNS: a missing path, a plain file, a directory, a
// FIFO (without blocking on it) and another kind of namespace are each
// refused with an error naming the path, and Run never enters them.
func TestIDRefusesWhatIsNoNetNS(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		is   error
	}{
		{filepath.Join(dir, "missing"), fs.ErrNotExist},
		{plain, ErrNotNetNS},
		{dir, ErrNotNetNS},
		{fifo, ErrNotNetNS},
		{"/proc/self/ns/mnt", ErrNotNetNS},
	} {
		n, err := Parse(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { _, err := n.ID(); done <- err }()
		select {
		case err = <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("ID(%s) blocked", tc.path)
		}
		if !errors.Is(err, tc.is) || !strings.HasPrefix(err.Error(), "netns "+strconv.Quote(tc.path)+": ") {
			t.Errorf("ID(%s): %v, want %v naming the path", tc.path, err, tc.is)
		}
		ran := false
		err = n.Run(func() error { ran = true; return nil })
		if ran || !errors.Is(err, tc.is) {
			t.Errorf("Run(%s): ran %v, %v; want %v", tc.path, ran, err, tc.is)
		}
	}
}

// TestIDNamedProcAndBindMount: a named namespace, the /proc/PID/ns/net of
// a process inside it and a bind mount of that are one ID; the process's
// own namespace and another one are not.
func TestIDNamedProcAndBindMount(t *testing.T) {
	needRoot(t)
	p := uniquePrefix(t)
	a, b := named(t, p+"a"), named(t, p+"b")
	idA, err := a.ID()
	if err != nil {
		t.Fatal(err)
	}
	if idA.Ino == 0 {
		t.Fatalf("ID of %s: %+v", a, idA)
	}

	// A child forked from a thread inside a is in a.
	var cmd *exec.Cmd
	err = a.Run(func() error {
		cmd = exec.Command("sleep", "600")
		return cmd.Start()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	proc, err := Parse("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/ns/net")
	if err != nil || proc.Name() != "" {
		t.Fatalf("Parse of a /proc path: %+v, %v", proc, err)
	}
	if id, err := proc.ID(); err != nil || id != idA {
		t.Errorf("ID(%s) = %+v, %v; want %s's %+v", proc, id, err, a, idA)
	}

	mnt := filepath.Join(t.TempDir(), "ns")
	if err := os.WriteFile(mnt, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(proc.Path(), mnt, "none", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	bind := FromPath(mnt)
	if same, err := bind.SameAs(a); err != nil || !same {
		t.Errorf("bind mount %s SameAs %s: %v, %v; want true", mnt, a, same, err)
	}
	for _, other := range []NS{b, Self()} {
		if same, err := a.SameAs(other); err != nil || same {
			t.Errorf("%s SameAs %s: %v, %v; want false", a, other, same, err)
		}
	}

	// An open handle keeps its ID once the name is gone.
	h, err := a.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := a.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ID(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ID of a deleted name: %v, want not exist", err)
	}
	if id, err := proc.ID(); err != nil || id != h.ID() {
		t.Errorf("the namespace behind the handle: %+v, %v; want %+v", id, err, h.ID())
	}
	var inside ID
	err = h.Run(func() (err error) {
		inside, err = FromPath("/proc/thread-self/ns/net").ID()
		return err
	})
	if err != nil || inside != h.ID() {
		t.Errorf("Handle.Run ran in %+v, %v; want %+v", inside, err, h.ID())
	}
}
