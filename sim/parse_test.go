package sim

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapswitch/tapswitch/fdb"
)

const goodBase = `name: t
switches:
  - name: cbr0
hosts:
  - {name: pod1, ip: 10.244.0.2/24}
  - {name: pod2, ip: 10.244.0.3/24}
links:
  - {a: pod1, b: cbr0}
  - {a: pod2, b: cbr0}
`

// TestParseErrorsNameTheLine: unknown keys, bad values and impossible
// topologies are errors of the form file:line: message.
func TestParseErrorsNameTheLine(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown key in link", goodBase + "  - {a: pod1, b: cbr0, latncy: 1ms}\n",
			`s.yaml:10: unknown key "latncy" in link`},
		{"unknown top key", "name: x\nswitchs: []\n", `s.yaml:2: unknown key "switchs" in scenario`},
		{"bad duration", goodBase + "timeline:\n  - at: soon\n", `s.yaml:11: at "soon": want a duration`},
		{"bad policy", "switches:\n  - name: s\n    policy: lru\n", `s.yaml:3: fdb policy "lru"`},
		{"bad ip", "hosts:\n  - {name: h, ip: 10.0.0.300/24}\n", `s.yaml:2: ip "10.0.0.300/24"`},
		{"ip without prefix", "hosts:\n  - {name: h, ip: 10.0.0.3}\n", `s.yaml:2: ip "10.0.0.3": want an address with its prefix length`},
		{"duplicate name", "switches:\n  - name: a\nhosts:\n  - {name: a, ip: 10.0.0.1/24}\n", `s.yaml:4: host "a": the name is taken by a switch`},
		{"two actions", goodBase + "timeline:\n  - at: 1s\n    garp: pod1\n    link_down: x\n", `s.yaml:13: timeline step: one action per step`},
		{"no comparison", goodBase + "assert:\n  - delivered: {ping: p}\n", `s.yaml:11: delivered: want one of equals`},
		{"bad loss", goodBase + "  - {a: pod1, b: cbr0, loss: 2}\n", `s.yaml:10: loss 2: want 0-1`},
		{"bad bandwidth", goodBase + "  - {a: pod1, b: cbr0, bandwidth: fast}\n", `s.yaml:10: bandwidth "fast"`},
		{"trunk without vlans", "switches:\n  - name: s\n    ports:\n      - {name: up, trunk: true}\n", `s.yaml:4: port "up": a trunk needs allowed VLANs`},
		{"vlan range", "switches:\n  - name: s\n    ports:\n      - {name: up, vlan: 4095}\n", `s.yaml:4: vlan 4095: want 1-4094`},
		{"yaml syntax", "switches: [\n", `s.yaml:`},
		{"list expected", "hosts: pod1\n", `s.yaml:1: hosts: want a list`},
		{"stopped value", "assert:\n  - stopped: never\n", `s.yaml:2: stopped "never"`},
		{"frames type", goodBase + "assert:\n  - frames: {port: pod1, dir: rx, type: jumbo, equals: 1}\n", `s.yaml:11: frame type "jumbo"`},
		{"unknown stat", goodBase + "assert:\n  - switch_stat: {switch: cbr0, stat: magic, equals: 1}\n", `s.yaml:11: stat "magic"`},
		{"empty", "", `s.yaml: empty scenario`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("s.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("parsed")
			}
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("%T is not *Error: %v", err, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got  %v\nwant %s", err, tc.want)
			}
		})
	}
}

// TestBuildErrorsNameTheLine: references and topologies that cannot be
// built fail in New, naming the line too.
func TestBuildErrorsNameTheLine(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown link end", goodBase + "  - {a: pod9, b: cbr0}\n", `s.yaml:10: link end "pod9": no host or switch named "pod9"`},
		{"linked twice", goodBase + "  - {a: pod1, b: cbr0:other}\n", `s.yaml:10: link end "pod1": pod1 is already linked`},
		{"port twice", goodBase + "  - {name: x, a: cbr0:pod1, b: cbr0:y}\n", `s.yaml:10: port cbr0:pod1 is already linked`},
		{"unlinked host", "switches: [{name: s}]\nhosts:\n  - {name: a, ip: 10.0.0.2/24}\n  - {name: b, ip: 10.0.0.3/24}\nlinks: [{a: a, b: s}]\n", `s.yaml:4: host "b": interface eth0 is not linked to anything`},
		{"gateway off subnet", "switches: [{name: s}]\nhosts:\n  - {name: h, ip: 10.0.0.2/24, gateway: 10.9.9.1}\nlinks: [{a: h, b: s}]\n", `s.yaml:3: host "h": gateway 10.9.9.1 is on none of its subnets`},
		{"route via off subnet", "switches: [{name: s}]\nhosts:\n  - name: r\n    ip: 10.0.0.1/24\n    routes:\n      - {to: 10.1.0.0/16, via: 10.2.0.1}\nlinks: [{a: r, b: s}]\n", `s.yaml:6: host "r": route to 10.1.0.0/16: via 10.2.0.1 is on none of its subnets`},
		{"duplicate ip", "switches: [{name: s}]\nhosts:\n  - {name: a, ip: 10.0.0.2/24}\n  - {name: b, ip: 10.0.0.2/24}\nlinks: [{a: a, b: s}, {a: b, b: s}]\n", `s.yaml:4: host "b": ip 10.0.0.2 is also a's`},
		{"duplicate mac", "switches: [{name: s}]\nhosts:\n  - {name: a, ip: 10.0.0.2/24, mac: 02:00:00:00:00:01}\n  - {name: b, ip: 10.0.0.3/24, mac: 02:00:00:00:00:01}\nlinks: [{a: a, b: s}, {a: b, b: s}]\n", `s.yaml:4: host "b": mac 02:00:00:00:00:01 is also a's`},
		{"ping unknown host", goodBase + "timeline:\n  - ping: {from: pod9, to: pod1}\n", `s.yaml:11: no host named "pod9"`},
		{"ping unknown target", goodBase + "timeline:\n  - ping: {from: pod1, to: nobody}\n", `s.yaml:11: "nobody" is neither an IPv4 address nor a host`},
		{"stop unknown flow", goodBase + "timeline:\n  - stop_flow: f\n", `s.yaml:11: stop_flow: no flow "f"`},
		{"endless flow", goodBase + "timeline:\n  - flow: {name: f, from: pod1, to: pod2}\n", `s.yaml:11: flow "f" never ends`},
		{"link_down unknown", goodBase + "timeline:\n  - link_down: nope\n", `s.yaml:11: no link named "nope"`},
		{"assert unknown ping", goodBase + "assert:\n  - delivered: {ping: p, equals: 1}\n", `s.yaml:11: assertion delivered: no ping or arping named "p"`},
		{"assert unknown port", goodBase + "assert:\n  - fdb: {switch: cbr0, mac: pod1, port: nope}\n", `s.yaml:11: assertion fdb: switch "cbr0" has no port "nope"`},
		{"since on fdb", goodBase + "assert:\n  - since: 1s\n    fdb: {switch: cbr0, mac: pod1, port: pod1}\n", `s.yaml:11: assertion fdb: since applies only to counting checks`},
		{"multi-interface host", "switches: [{name: s}]\nhosts:\n  - name: r\n    interfaces: [{name: a, ip: 10.0.0.1/24}, {name: b, ip: 10.1.0.1/24}]\nlinks:\n  - {a: r, b: s}\n", `s.yaml:6: host "r" has 2 interfaces: name one, such as r:a`},
		{"unused port spec", "switches:\n  - name: s\n    ports: [{name: typo}]\n", `s.yaml:3: switch "s": port "typo" is set up but no link or move uses it`},
		{"ping too big", goodBase + "timeline:\n  - ping: {from: pod1, to: pod2, size: 1500}\n", `s.yaml:11: ping "ping pod1->pod2": size 1500 does not fit pod1's MTU of 1500`},
		{"move to used port", goodBase + "timeline:\n  - move: {host: pod1, to: cbr0:pod2}\n", `s.yaml:11: move to "cbr0:pod2": the port is already in use`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, err := Parse("s.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			_, err = New(sc, Options{})
			if err == nil {
				t.Fatal("built")
			}
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("%T is not *Error: %v", err, err)
			}
			if tc.want == "" {
				tc.want = "is not linked to anything"
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got  %v\nwant %s", err, tc.want)
			}
		})
	}
}

// TestParseDefaults pins what Parse fills in.
func TestParseDefaults(t *testing.T) {
	sc, err := Parse("s.yaml", []byte(goodBase+"timeline:\n  - ping: {from: pod1, to: pod2}\n"))
	if err != nil {
		t.Fatal(err)
	}
	sw := sc.Switches[0]
	if sw.Ageing != fdb.DefaultAgeing || sw.TableLimit != fdb.DefaultLimit || sw.Policy != fdb.StopLearning {
		t.Errorf("switch defaults: %+v", sw)
	}
	l := sc.Links[0]
	if l.Latency != DefaultLatency || l.Bandwidth != DefaultBandwidth || l.Queue != DefaultQueue || l.Name != "pod1--cbr0" {
		t.Errorf("link defaults: %+v", l)
	}
	p := sc.Timeline[0].Action.(*Ping)
	if p.Count != 1 || p.Size != 56 || p.TTL != 64 {
		t.Errorf("ping defaults: %+v", p)
	}
	if sc.Run.MaxEvents != DefaultMaxEvents || sc.Seed != 1 {
		t.Errorf("run defaults: %+v seed %d", sc.Run, sc.Seed)
	}
}

// TestEveryKeyDocumented: every key the parser accepts appears in the
// README with an example.
func TestEveryKeyDocumented(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(readme)
	keys := []string{
		"name", "description", "seed", "run", "duration", "max_events", "max_frames", "tick",
		"switches", "ageing", "table_limit", "port_limit", "policy", "arp", "suppress", "guard", "mtu", "ports",
		"vlan", "trunk", "allowed", "hairpin", "fdb_limit", "ips", "storm",
		"hosts", "mac", "ip", "gateway", "forward", "interfaces", "routes", "to", "via", "arp_timeout", "static_arp",
		"links", "a", "b", "latency", "bandwidth", "loss", "queue", "down",
		"timeline", "at", "wait", "from", "count", "interval", "size", "ttl", "port", "rate",
		"remove_old", "garp", "target", "op", "assert", "since", "equals", "at_least", "at_most", "below", "above",
		"dir", "type", "absent", "stat", "host", "switch", "ping", "flow",
	}
	keys = append(keys, actionKeys...)
	keys = append(keys, assertKinds...)
	for _, k := range keys {
		if !strings.Contains(doc, "`"+k+"`") {
			t.Errorf("README.md does not document `%s`", k)
		}
	}
	// and every example in the README parses
	for i, block := range strings.Split(doc, "```yaml")[1:] {
		block = block[:strings.Index(block, "```")]
		if !strings.Contains(block, "name:") || strings.Contains(block, "# fragment") {
			continue
		}
		sc, err := Parse(filepath.Join("README.md", "example", string(rune('a'+i))), []byte(block))
		if err != nil {
			t.Errorf("README example %d: %v", i, err)
			continue
		}
		res, err := Run(sc, Options{})
		if err != nil {
			t.Errorf("README example %d: %v", i, err)
			continue
		}
		for _, a := range res.Assertions {
			if !a.Pass {
				t.Errorf("README example %d: %v", i, a)
			}
		}
	}
}

// TestParseSetsEveryKey: each optional key, given a value other than its
// default, lands in its own field (TestParseDefaults covers leaving it out).
func TestParseSetsEveryKey(t *testing.T) {
	sc, err := Parse("s.yaml", []byte(`
description: d
run: {duration: 3s, max_events: 7, max_frames: 9, tick: 2ms}
switches:
  - name: s
    ageing: never
    table_limit: 11
    port_limit: 12
    arp: {suppress: true, guard: true, ageing: 4s}
    mtu: 9000
    ports: [{name: p, vlan: 5, trunk: true, hairpin: true, fdb_limit: 13, storm: 14, mtu: 1400}]
hosts:
  - {name: h, mac: "02:00:00:00:00:01", ip: 10.0.0.1/24, mtu: 1300, gateway: 10.0.0.9, forward: true}
links:
  - {a: h, b: s, latency: 5ms, bandwidth: 1Mbit, loss: 1%, queue: 15, down: true}
timeline:
  - ping: {from: h, to: 10.0.0.2, count: 2, interval: 6ms, size: 100, ttl: 9}
  - arping: {from: h, to: 10.0.0.2, count: 3, interval: 7ms}
  - flow: {from: h, to: 10.0.0.2, port: 99, size: 16, count: 4}
  - move: {host: h, to: "s:q", remove_old: true, garp: true}
  - spoof_arp: {from: h, ip: 10.0.0.2, mac: h, target: h, count: 5, interval: 8ms}
  - mac_flood: {from: h, count: 6}
assert:
  - frames: {port: "s:p", dir: rx, type: arp, below: 3}
  - fdb: {switch: s, mac: h, vlan: 5, absent: true}
  - flood_ratio: {switch: s, port: "s:p", at_most: 0.5}
  - arp_cache: {host: h, ip: 10.0.0.2, mac: h}
`))
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%+v|%+v|%+v|%+v|%+v", sc.Run, sc.Switches, sc.Hosts, sc.Links, sc.Description)
	for _, want := range []string{
		"Duration:3s MaxEvents:7 MaxFrames:9 Tick:2ms",
		"Ageing:0s TableLimit:11 PortLimit:12", "Suppress:true Guard:true ARPAgeing:4s MTU:9000",
		"VLAN:5 Trunk:true", "Hairpin:true FDBLimit:13", "Storm:14 MTU:1400",
		"MAC:02:00:00:00:00:01", "MTU:1300", "Forward:true", "Gateway:10.0.0.9",
		"Latency:5ms Bandwidth:1000000 Loss:0.01 Queue:15 Down:true", "|d",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("lacks %q:\n%s", want, got)
		}
	}
	var acts []string
	for _, st := range sc.Timeline {
		acts = append(acts, fmt.Sprintf("%+v", st.Action))
	}
	for i, want := range []string{
		"Count:2 Interval:6ms Size:100 TTL:9", "Count:3 Interval:7ms", "Port:99 Rate:100 Size:16 Count:4",
		"RemoveOld:true GARP:true", "MAC:h Target:h Op:2 Count:5 Interval:8ms", "Count:6",
	} {
		if !strings.Contains(acts[i], want) {
			t.Errorf("action %d lacks %q: %s", i, want, acts[i])
		}
	}
	var asserts []string
	for _, a := range sc.Assertions {
		asserts = append(asserts, fmt.Sprintf("%+v", a))
	}
	for i, want := range []string{"Port:s:p Host: MAC: IP:invalid IP VLAN:0 Dir:rx Type:arp", "VLAN:5", "Port:s:p", "MAC:h"} {
		if !strings.Contains(asserts[i], want) {
			t.Errorf("assertion %d lacks %q: %s", i, want, asserts[i])
		}
	}
	if c := sc.Assertions[0].Cmp; c.Op != "<" || c.Value != 3 {
		t.Errorf("below 3 parsed as %+v", c)
	}
	if c := sc.Assertions[2].Cmp; c.Op != "<=" || c.Value != 0.5 {
		t.Errorf("at_most 0.5 parsed as %+v", c)
	}
}
