package tap

import "github.com/tapswitch/tapswitch/netns"

// The namespace helpers below are package netns's, under the names tap's
// callers know.

// NetNSDir is where named network namespaces are bind-mounted: netns.Dir.
const NetNSDir = netns.Dir

// NetNSPath returns the path of the named network namespace name.
func NetNSPath(name string) string { return netns.PathOf(name) }

// InNamespace runs fn on an OS thread that has joined the network namespace at
// path, and returns fn's error, as netns.NS.Run.
func InNamespace(path string, fn func() error) error {
	return netns.FromPath(path).Run(fn)
}

// CreateNetNS creates the named network namespace unless it exists, and
// reports whether this call created it, as netns.NS.Create.
func CreateNetNS(name string) (created bool, err error) {
	n, err := netns.Named(name)
	if err != nil {
		return false, err
	}
	return n.Create()
}

// DeleteNetNS removes the named network namespace; a missing one is not an
// error, as netns.NS.Delete.
func DeleteNetNS(name string) error {
	n, err := netns.Named(name)
	if err != nil {
		return err
	}
	return n.Delete()
}
