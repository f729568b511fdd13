package sim

import "testing"

// TestGuardKeepsFDB: ARP that the guard drops should not teach the FDB.
// An attacker forging both the Ethernet source and the ARP sender as the
// gateway's MAC is dropped by the guard; were vswitch to learn the source
// before the ARP verdict, the gateway's entry would move to the attacker's
// port and the pod's traffic for its gateway would go to the attacker.
// vswitch once did (Learn preceded handleARP); this test holds the fix.
func TestGuardKeepsFDB(t *testing.T) {
	res := runYAML(t, "guard.yaml", `
switches: [{name: cbr0, arp: {guard: true}}]
hosts:
  - {name: pod1, ip: 10.244.0.2/24, gateway: 10.244.0.1}
  - {name: gw, ip: 10.244.0.1/24, forward: true}
  - {name: attacker, ip: 10.244.0.66/24}
links: [{a: pod1, b: cbr0}, {a: gw, b: cbr0}, {a: attacker, b: cbr0}]
timeline:
  - at: 1s
    ping: {name: p, from: pod1, to: gw, count: 5}
  - at: 2.5s
    spoof_arp: {from: attacker, ip: 10.244.0.1, mac: gw}
assert:
  - switch_stat: {switch: cbr0, stat: arp_guard_drops, equals: 1}
  - at: 2.6s
    fdb: {switch: cbr0, mac: gw, port: gw}
  - delivered: {ping: p, equals: 5}
`, Options{})
	if !res.Assertions[0].Pass {
		t.Fatalf("the guard did not drop the forged ARP: %v", res.Assertions[0])
	}
	if !res.Passed {
		t.Fatalf("a guard-dropped ARP moved the FDB entry: %v; %v", res.Assertions[1], res.Assertions[2])
	}
}
