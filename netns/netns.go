package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetNSDir is where named network namespaces are bind-mounted, as by `ip netns add`.
const NetNSDir = "/var/run/netns"

// NetNSPath returns the path of the named network namespace name.
func NetNSPath(name string) string { return filepath.Join(NetNSDir, name) }

// InNamespace runs fn on an OS thread that has joined the network namespace at
// path, and returns fn's error. Sockets and TAP queues opened by fn stay in that
// namespace after fn returns; goroutines started by fn do not run in it.
func InNamespace(path string, fn func() error) error {
	target, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("netns %q: %w", path, err)
	}
	defer target.Close()
	return onLockedThread(func() error {
		if err := netns.Set(target); err != nil {
			return fmt.Errorf("netns %q: setns: %w", path, err)
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
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns of current thread: %w", err)
			return
		}
		defer orig.Close()
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("restoring thread netns: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// CreateNetNS creates the named network namespace unless it exists, and reports
// whether this call created it, so that a caller failing later knows whether to
// delete it.
func CreateNetNS(name string) (created bool, err error) {
	if err := CheckNetNSName(name); err != nil {
		return false, err
	}
	path := NetNSPath(name)
	if _, err := os.Stat(path); err == nil {
		return false, checkIsNetNS(name, path)
	}
	if err := shareNetNSDir(); err != nil {
		return false, fmt.Errorf("netns %q: %w", name, err)
	}
	err = onLockedThread(func() error {
		// NewNamed unshares the calling thread into the new namespace;
		// onLockedThread moves it back.
		h, err := netns.NewNamed(name)
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
		return false, checkIsNetNS(name, path)
	}
	if err != nil {
		return false, fmt.Errorf("netns %q: create: %w", name, err)
	}
	return true, nil
}

// shareNetNSDir makes NetNSDir a shared mount point of its own, as iproute2's
// `ip netns add` does, before a namespace is mounted in it. Without it the
// first `ip netns add` after us bind-mounts the directory over itself and
// covers the namespaces already mounted there: they stay listed, but can be
// neither unmounted nor removed.
func shareNetNSDir() error {
	if err := os.MkdirAll(NetNSDir, 0o755); err != nil {
		return err
	}
	err := unix.Mount("", NetNSDir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if errors.Is(err, unix.EINVAL) { // not a mount point yet
		if err = unix.Mount(NetNSDir, NetNSDir, "none", unix.MS_BIND|unix.MS_REC, ""); err == nil {
			err = unix.Mount("", NetNSDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		}
	}
	if err != nil {
		return fmt.Errorf("make %s a shared mount: %w", NetNSDir, err)
	}
	return nil
}

// DeleteNetNS removes the named network namespace. The namespace itself lives on
// until its last process, socket or open handle is gone. A missing namespace is
// not an error, so that deletion can be retried.
func DeleteNetNS(name string) error {
	if err := CheckNetNSName(name); err != nil {
		return err
	}
	path := NetNSPath(name)
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

// ResolveNetNS accepts a namespace name or a path. name is set when the path is a
// named namespace that this package may create and delete; a path such as
// /proc/PID/ns/net belongs to someone else.
func ResolveNetNS(s string) (path, name string) {
	if !strings.ContainsRune(s, '/') {
		return NetNSPath(s), s
	}
	path = filepath.Clean(s)
	if dir := filepath.Dir(path); dir == NetNSDir || dir == "/run/netns" {
		return path, filepath.Base(path)
	}
	return path, ""
}

func CheckNetNSName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return fmt.Errorf("netns %q: invalid name", name)
	}
	return nil
}

// checkIsNetNS refuses a leftover plain file (for instance from a crashed `ip
// netns add`), which would otherwise fail later with an obscure setns EINVAL.
func checkIsNetNS(name, path string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return fmt.Errorf("netns %q: %w", name, err)
	}
	if st.Type != unix.NSFS_MAGIC {
		return fmt.Errorf("netns %q: %s exists but is not a namespace mount", name, path)
	}
	return nil
}
