// Package sim is a deterministic packet-level simulator for tapswitch: it
// drives the real vswitch, fdb and arp code through in-memory ports on a
// virtual clock, so a result in the simulator is a result about the product.
//
// A Scenario (YAML, see README.md) names switches, hosts (pods, nodes,
// routers with a small IPv4 stack) and links (latency, bandwidth, queue,
// seeded loss), a timeline of actions and assertions. New builds it, Run
// runs it: events fire in (time, sequence) order, so the same scenario and
// seed always give the same run, byte for byte in the captures and metrics.
package sim
