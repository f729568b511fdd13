// Package hostile holds the root tests of tapswitch against hostile pods and
// faults on the real dataplane: MAC flooding, ARP and NDP spoofing, rogue
// router advertisements, malformed frames written into a pod's TAP from
// inside its namespace (podnet.FrameWriter, the attacker's tool), and a
// control socket under load.
package hostile
