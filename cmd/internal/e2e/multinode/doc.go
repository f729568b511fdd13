// Package multinode holds the tests of traffic that leaves the switch
// through the node: same-node pod -> Service -> pod with a kube-proxy-like
// DNAT (the host NAT rules of package hostnat), and two nodes, each a
// network namespace with its own in-process daemon, joined by a veth
// underlay (pod to pod across nodes, on the real dataplane). The
// tests change nothing in the host's own namespace: nodes, pods and the
// "outside" host are namespaces the tests make.
package multinode
