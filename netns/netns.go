// Package netns is the one place that knows how this project refers to a
// Linux network namespace: by a name under Dir, as `ip netns` makes them,
// or by a path (a bind mount, /proc/PID/ns/net). An NS resolves either
// form, tells whether the path is a network namespace and which one (ID),
// runs code inside it (Run), and creates and deletes named ones. CheckIfName
// is the one rule for the names of interfaces that live in a namespace.
//
// It imports no other package of the project, so that the CNI plugin, the
// daemon, the TAP package and the test environment can all use it.
package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"

	vns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Run runs fn on an OS thread that has joined the namespace, and returns
// fn's error. Sockets and TAP queues opened by fn stay in that namespace
// after fn returns; goroutines started by fn do not run in it. Errors
// before fn name the namespace and wrap fs.ErrNotExist when it is missing,
// ErrNotNetNS when the path holds no network namespace.
func (n NS) Run(fn func() error) error {
	h, err := n.Open()
	if err != nil {
		return err
	}
	defer h.Close()
	return h.Run(fn)
}

// Run runs fn in the open namespace, as NS.Run: in the very namespace whose
// ID the handle holds, whatever its path names by now.
func (h *Handle) Run(fn func() error) error {
	return onLockedThread(func() error {
		if err := unix.Setns(h.Fd(), unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("netns %q: setns: %w", h.f.Name(), err)
		}
		return fn()
	})
}

// onLockedThread runs fn on a fresh locked OS thread and puts the thread back into
// its original namespace afterwards. A fresh goroutine, because the caller's own
// thread may be locked for reasons of its own. If the thread cannot be put back it
// stays locked, so the runtime discards it instead of scheduling other goroutines
// in the wrong namespace.
func onLockedThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := vns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns of current thread: %w", err)
			return
		}
		defer orig.Close()
		ferr := fn()
		if err := vns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("restoring thread netns: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// errNotNamed refuses to create or delete a namespace known by path only,
// which is someone else's.
func (n NS) errNotNamed() error {
	return n.errorf(errors.New("not a named namespace"))
}

// Create creates the named namespace unless it exists, and reports whether
// this call created it, so that a caller failing later knows whether to
// delete it. It refuses a namespace known by path only.
func (n NS) Create() (created bool, err error) {
	if n.name == "" {
		return false, n.errNotNamed()
	}
	name, path := n.name, PathOf(n.name)
	if _, err := os.Stat(path); err == nil {
		return false, checkMounted(name, path)
	}
	if err := shareDir(); err != nil {
		return false, fmt.Errorf("netns %q: %w", name, err)
	}
	err = onLockedThread(func() error {
		// NewNamed unshares the calling thread into the new namespace;
		// onLockedThread moves it back.
		h, err := vns.NewNamed(name)
		if err != nil {
			if !errors.Is(err, fs.ErrExist) {
				// NewNamed leaves the mount point behind when the bind mount fails.
				_ = os.Remove(path)
			}
			return err
		}
		return h.Close()
	})
	if errors.Is(err, fs.ErrExist) {
		// Lost a race with another creator; the namespace is theirs.
		return false, checkMounted(name, path)
	}
	if err != nil {
		return false, fmt.Errorf("netns %q: create: %w", name, err)
	}
	return true, nil
}

// shareDir makes Dir a shared mount point of its own, as iproute2's
// `ip netns add` does, before a namespace is mounted in it. Without it the
// first `ip netns add` after us bind-mounts the directory over itself and
// covers the namespaces already mounted there: they stay listed, but can be
// neither unmounted nor removed.
func shareDir() error {
	if err := os.MkdirAll(Dir, 0o755); err != nil {
		return err
	}
	err := unix.Mount("", Dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if errors.Is(err, unix.EINVAL) { // not a mount point yet
		if err = unix.Mount(Dir, Dir, "none", unix.MS_BIND|unix.MS_REC, ""); err == nil {
			err = unix.Mount("", Dir, "none", unix.MS_SHARED|unix.MS_REC, "")
		}
	}
	if err != nil {
		return fmt.Errorf("make %s a shared mount: %w", Dir, err)
	}
	return nil
}

// Delete removes the named namespace. The namespace itself lives on until
// its last process, socket or open handle is gone. A missing namespace is
// not an error, so that deletion can be retried. It refuses a namespace
// known by path only.
func (n NS) Delete() error {
	if n.name == "" {
		return n.errNotNamed()
	}
	name, path := n.name, PathOf(n.name)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil &&
		!errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
		// EINVAL: not a mount point (a stale file); remove it all the same.
		return fmt.Errorf("netns %q: unmount: %w", name, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("netns %q: %w", name, err)
	}
	return nil
}

// checkMounted refuses a leftover plain file (for instance from a crashed `ip
// netns add`), which would otherwise fail later with an obscure setns EINVAL.
func checkMounted(name, path string) error {
	_, err := NS{ref: name, path: path, name: name}.ID()
	if errors.Is(err, ErrNotNetNS) {
		return fmt.Errorf("netns %q: %s exists but is not a namespace mount", name, path)
	}
	return err
}

// CreateNamed creates the named namespace name unless it exists, and
// reports whether this call created it: Named then Create.
func CreateNamed(name string) (created bool, err error) {
	n, err := Named(name)
	if err != nil {
		return false, err
	}
	return n.Create()
}

// DeleteNamed removes the named namespace name; a missing one is not an
// error: Named then Delete.
func DeleteNamed(name string) error {
	n, err := Named(name)
	if err != nil {
		return err
	}
	return n.Delete()
}
