// Package podnet makes traffic from inside pod network namespaces with Go's
// own sockets, no ping or iperf3 binaries: ICMP and ICMPv6 echo (Ping), a
// TCP bulk transfer checked end to end with SHA-256 (Transfer), sockets
// listening or dialled inside a namespace (Listen, ListenPacket, Dial), raw
// Ethernet frames out of a pod's interface (FrameWriter), and the
// namespace's sysctls (DisableIPv6). The demo, the bench, `sim --real` and
// the tests share it.
//
// Each socket is created on a thread that has joined the namespace
// (netns.NS.Run) and stays in that namespace after the thread leaves, so
// the I/O itself runs on ordinary goroutines.
package podnet

import "github.com/tapswitch/tapswitch/netns"

// inNS runs fn on a thread in ns, a named namespace ("pod1") or a path
// ("/proc/1/ns/net"), resolved as the daemon and the CNI plugin resolve it.
func inNS(ns string, fn func() error) error {
	n, err := netns.Parse(ns)
	if err != nil {
		return err
	}
	return n.Run(fn)
}
