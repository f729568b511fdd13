package tap

import "github.com/tapswitch/tapswitch/netns"

// The namespace helpers below are package netns's, under the names tap's
// callers know.

// NetNSDir is where named network namespaces are bind-mounted.
const NetNSDir = netns.NetNSDir

// NetNSPath returns the path of the named network namespace name.
func NetNSPath(name string) string { return netns.NetNSPath(name) }

// InNamespace runs fn on an OS thread that has joined the network namespace at
// path, and returns fn's error.
func InNamespace(path string, fn func() error) error { return netns.InNamespace(path, fn) }

// CreateNetNS creates the named network namespace unless it exists, and
// reports whether this call created it.
func CreateNetNS(name string) (bool, error) { return netns.CreateNetNS(name) }

// DeleteNetNS removes the named network namespace; a missing one is not an
// error.
func DeleteNetNS(name string) error { return netns.DeleteNetNS(name) }

func resolveNetNS(s string) (path, name string) { return netns.ResolveNetNS(s) }

func checkNetNSName(name string) error { return netns.CheckNetNSName(name) }
