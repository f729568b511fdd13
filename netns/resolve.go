package netns

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// Dir is where named network namespaces are bind-mounted, as by `ip netns add`.
const Dir = "/var/run/netns"

// PathOf returns the path of the named namespace name, without checking name.
func PathOf(name string) string { return filepath.Join(Dir, name) }

// NS is a network namespace as a caller refers to it.
type NS struct {
	ref  string // as the caller gave it, for errors
	path string
	name string // set for a named namespace under Dir
}

// Parse resolves ref, a namespace name or a path. A name (no '/') is the
// named namespace under Dir, and so is a path in Dir or /run/netns; any
// other path (a bind mount elsewhere, /proc/PID/ns/net) belongs to someone
// else, and Create and Delete refuse it. Parse does no I/O: whether a
// namespace is there is for ID, Open and Run to find out.
func Parse(ref string) (NS, error) {
	if ref == "" {
		return NS{}, errors.New("no netns")
	}
	if !strings.ContainsRune(ref, '/') {
		return Named(ref)
	}
	n := NS{ref: ref, path: filepath.Clean(ref)}
	if dir := filepath.Dir(n.path); dir == Dir || dir == "/run/netns" {
		// The base of a cleaned path below a directory is never "", "."
		// or "..", nor holds a '/': always a valid name.
		n.name = filepath.Base(n.path)
	}
	return n, nil
}

// Named is the named namespace name under Dir. It refuses a name that is
// not one file name in Dir: empty, ".", ".." or holding a '/'.
func Named(name string) (NS, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return NS{}, fmt.Errorf("netns %q: invalid name", name)
	}
	return NS{ref: name, path: PathOf(name), name: name}, nil
}

// FromPath is the namespace at path, taken as it is: never a name, never
// one that Create or Delete would touch.
func FromPath(path string) NS { return NS{ref: path, path: path} }

// Self is this process's namespace (its main thread's): what a path that
// must name a pod's namespace must not be.
func Self() NS { return FromPath("/proc/self/ns/net") }

// Path returns the namespace's path.
func (n NS) Path() string { return n.path }

// Name returns the name of a named namespace under Dir, "" for one known by
// path only.
func (n NS) Name() string { return n.name }

// String returns the namespace as the caller gave it.
func (n NS) String() string { return n.ref }

// errorf wraps err naming the namespace as the caller gave it.
func (n NS) errorf(err error) error { return fmt.Errorf("netns %q: %w", n.ref, err) }
