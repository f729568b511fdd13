// Package bench compares tapswitch with the kernel bridge it replaces, end
// to end on this machine: it builds the same pod topology twice (a Linux
// bridge with veth pairs, the cbr0 model, and a tapswitch daemon with a TAP
// per pod), drives traffic from Go sockets opened inside the pod namespaces,
// and reports medians, ranges and the tapswitch/bridge ratio per case.
//
// Optionally (BuildOVS, `tapswitch bench --with-ovs`) a third topology runs
// Open vSwitch's userspace datapath over the same kind of ports: a bridge
// with datapath_type=netdev whose type=tap ports ovs-vswitchd creates in the
// host namespace and the bench moves into the pod namespaces as eth0; the
// report then adds the tapswitch/ovs ratio. It needs a running
// ovs-vswitchd (OVSAvailable says why not).
//
// For the tapswitch child daemon (a DaemonProcess) every round also reports
// its peak RSS (VmHWM, reset when the round starts) and its RSS at the end.
//
// The podsN cases give their pods permanent neighbour entries for each
// other (StaticNeighbours): the kernel's neighbour table is one for all
// namespaces and takes 1024 dynamic entries by default, and pods32 needs
// 992 per system.
//
// Everything it creates carries a per-run name prefix and lives in a fresh
// test subnet, and is removed again on success, failure and cancellation;
// Sweep removes what a run of a prefix left, OVS bridges included, and
// nothing else. The package's go test benchmarks measure the in-process
// pipeline through in-memory ports instead, with no root and no kernel
// devices.
package bench
