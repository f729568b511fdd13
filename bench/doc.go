// Package bench compares tapswitch with the kernel bridge it replaces, end
// to end on this machine: it builds the same pod topology twice (a Linux
// bridge with veth pairs, the cbr0 model, and a tapswitch daemon with a TAP
// per pod), drives traffic from Go sockets opened inside the pod namespaces,
// and reports medians, ranges and the tapswitch/bridge ratio per case.
//
// Everything it creates carries a per-run name prefix and lives in a fresh
// test subnet, and is removed again on success, failure and cancellation.
// The package's go test benchmarks measure the in-process pipeline through
// in-memory ports instead, with no root and no kernel devices.
package bench
