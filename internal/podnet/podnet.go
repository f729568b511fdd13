// Package podnet makes traffic from inside pod network namespaces with Go's
// own sockets, no ping or iperf3 binaries: ICMP and ICMPv6 echo (Ping), a
// TCP bulk transfer checked end to end with SHA-256 (Transfer), sockets
// listening or dialled inside a namespace (Listen, ListenPacket, Dial), raw
// Ethernet frames out of a pod's interface (FrameWriter), and the
// namespace's sysctls (DisableIPv6). The demo, the bench, `sim --real` and
// the tests share it.
//
// Each socket is created on a thread that has joined the namespace
// (tap.InNamespace) and stays in that namespace after the thread leaves, so
// the I/O itself runs on ordinary goroutines.
package podnet

import (
	"strings"

	"github.com/tapswitch/tapswitch/tap"
)

// nsPath accepts a named namespace ("pod1") or a path ("/proc/1/ns/net").
func nsPath(ns string) string {
	if strings.ContainsRune(ns, '/') {
		return ns
	}
	return tap.NetNSPath(ns)
}
