package api

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/arp"
	"github.com/tapswitch/tapswitch/fdb"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

// TestWireJSON pins the API's JSON: each response type, fully populated
// (built from core values through convert.go where the daemon does so),
// marshals to exactly these bytes. Renaming a field of a core type or of
// a wire type, or dropping one from a conversion, breaks it; so does a
// field added to a wire type without a value here (the populated check).
func TestWireJSON(t *testing.T) {
	mac := fdb.MAC{0x0a, 0x58, 0x0a, 0xf4, 0, 2}
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	c := vswitch.Counters{RxFrames: 1, RxBytes: 2, TxFrames: 3, TxBytes: 4, Flooded: 5, Unknown: 6, DropMap: map[string]uint64{"arp-guard": 8, "storm": 9}}
	port := PortFrom(vswitch.PortInfo{ID: 3, Name: "pod1", PVID: 1, Trunk: true, Allowed: []uint16{10, 20}, Hairpin: true, MTU: 1500, Storm: 100, LockMAC: mac, FDB: 4, Counters: c})
	dd := uint64(7)
	port.Kind, port.State, port.MAC, port.IP, port.IPs, port.DeviceDrops = KindPod, PodUp, mac.String(), "10.244.0.2/24", []string{"10.244.0.2/24", "fd00::2/64"}, &dd
	gone := PortFrom(vswitch.PortInfo{Name: "pod2"})
	gone.Kind, gone.State = KindPod, PodGone
	stats := Stats{Switch: "cbr0", Uptime: 12.5, Ports: 4, PodsUp: 3, PodsGone: 1,
		FDB:    FDBStatsFrom(fdb.Stats{Entries: 1, Learned: 2, Moved: 3, Flaps: 4, Aged: 5, Evicted: 6, Refused: 7, Flushed: 8, Limit: 9, Capacity: 10}),
		ARP:    ARPStatsFrom(arp.Stats{Neighbours: 1, Snooped: 2, Suppressed: 3, GuardDrops: 4, Malformed: 5, NDPSnooped: 6, NDPGuardDrops: 7, RAGuardDrops: 8, NDPMalformed: 9}),
		Totals: CountersFrom(c)}
	for _, tc := range []struct {
		name string
		v    any
		want string
	}{
		{"status", Status{Switch: "cbr0", PID: 42, Started: at, Subnet: "10.244.0.0/24", Gateway: "10.244.0.1", SubnetV6: "fd00::/64", GatewayV6: "fd00::1", GatewayIf: "cbr0-gw", GatewayMA: "02:00:00:00:00:01", StateFile: "/var/lib/tapswitch/state.json", Queues: 2, Reattached: 3},
			`{"switch":"cbr0","pid":42,"started":"2026-01-02T03:04:05.000000006Z","subnet":"10.244.0.0/24","gateway":"10.244.0.1","subnet_v6":"fd00::/64","gateway_v6":"fd00::1","gateway_interface":"cbr0-gw","gateway_mac":"02:00:00:00:00:01","state_file":"/var/lib/tapswitch/state.json","queues":2,"reattached":3}`},
		{"pod", Pod{Name: "pod1", State: PodGone, Reason: "netns vanished", Netns: "/var/run/netns/pod1", IfName: "eth0", IP: "10.244.0.2/24", IPs: []string{"10.244.0.2/24", "fd00::2/64"}, MAC: mac.String(), VLAN: 1, Port: 3, Queues: 2, Static: true, Created: at, ContainerID: "c0ffee", Network: "kubenet"},
			`{"name":"pod1","state":"gone","reason":"netns vanished","netns":"/var/run/netns/pod1","ifname":"eth0","ip":"10.244.0.2/24","ips":["10.244.0.2/24","fd00::2/64"],"mac":"0a:58:0a:f4:00:02","vlan":1,"port":3,"queues":2,"static":true,"created":"2026-01-02T03:04:05.000000006Z","container_id":"c0ffee","network":"kubenet"}`},
		{"port", port,
			`{"id":3,"name":"pod1","pvid":1,"trunk":true,"allowed":[10,20],"hairpin":true,"mtu":1500,"storm":100,"lock_mac":"0a:58:0a:f4:00:02","fdb_entries":4,"counters":{"rx_frames":1,"rx_bytes":2,"tx_frames":3,"tx_bytes":4,"flooded":5,"unknown_unicast":6,"drops":{"arp-guard":8,"storm":9}},"kind":"pod","state":"up","mac":"0a:58:0a:f4:00:02","ip":"10.244.0.2/24","ips":["10.244.0.2/24","fd00::2/64"],"device_drops":7}`},
		{"fdb entry", FDBEntryFrom(fdb.Entry{MAC: mac.HardwareAddr(), VLAN: 1, Port: 3, Kind: fdb.Learned, LastSeen: int64(time.Second)}, "pod1", int64(2500*time.Millisecond)),
			`{"mac":"0a:58:0a:f4:00:02","vlan":1,"port":3,"port_name":"pod1","kind":"learned","age":1.5}`},
		{"neighbour", NeighbourFrom(arp.Neighbour{IP: netip.MustParseAddr("10.244.0.2"), MAC: mac, VLAN: 1, Port: 3, LastSeen: int64(time.Second)}, "pod1", int64(3250*time.Millisecond)),
			`{"ip":"10.244.0.2","mac":"0a:58:0a:f4:00:02","vlan":1,"port":3,"port_name":"pod1","age":2.25}`},
		{"stats", stats,
			`{"switch":"cbr0","uptime":12.5,"ports":4,"pods_up":3,"pods_gone":1,"fdb":{"entries":1,"learned":2,"moved":3,"flaps":4,"aged":5,"evicted":6,"refused":7,"flushed":8,"limit":9,"capacity":10},"arp":{"neighbours":1,"snooped":2,"suppressed":3,"guard_drops":4,"malformed":5,"ndp_snooped":6,"ndp_guard_drops":7,"ra_guard_drops":8,"ndp_malformed":9},"totals":{"rx_frames":1,"rx_bytes":2,"tx_frames":3,"tx_bytes":4,"flooded":5,"unknown_unicast":6,"drops":{"arp-guard":8,"storm":9}}}`},
		{"gone port", gone,
			`{"id":0,"name":"pod2","pvid":0,"trunk":false,"hairpin":false,"mtu":0,"fdb_entries":0,"counters":{"rx_frames":0,"rx_bytes":0,"tx_frames":0,"tx_bytes":0,"flooded":0,"unknown_unicast":0},"kind":"pod","state":"gone"}`},
		{"empty stats", Stats{},
			`{"switch":"","uptime":0,"ports":0,"pods_up":0,"pods_gone":0,"fdb":{"entries":0,"learned":0,"moved":0,"flaps":0,"aged":0,"evicted":0,"refused":0,"flushed":0,"limit":0,"capacity":0},"arp":{"neighbours":0,"snooped":0,"suppressed":0,"guard_drops":0,"malformed":0,"ndp_snooped":0,"ndp_guard_drops":0,"ra_guard_drops":0,"ndp_malformed":0},"totals":{"rx_frames":0,"rx_bytes":0,"tx_frames":0,"tx_bytes":0,"flooded":0,"unknown_unicast":0}}`},
		{"pod spec", PodSpec{Name: "pod1", IP: "10.244.0.2/24", IPs: []string{"fd00::2/64"}, MAC: mac.String(), VLAN: 2, NetNS: "/proc/1/ns/net", IfName: "eth1", ContainerID: "c0ffee", Network: "kubenet", NoDefaultRoute: true},
			`{"name":"pod1","ip":"10.244.0.2/24","ips":["fd00::2/64"],"mac":"0a:58:0a:f4:00:02","vlan":2,"netns":"/proc/1/ns/net","ifname":"eth1","container_id":"c0ffee","network":"kubenet","no_default_route":true}`},
	} {
		b, err := json.Marshal(tc.v)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if string(b) != tc.want {
			t.Errorf("%s: JSON changed\n got %s\nwant %s", tc.name, b, tc.want)
		}
		if tc.name != "gone port" && tc.name != "empty stats" {
			if f := zeroField(reflect.ValueOf(tc.v), ""); f != "" {
				t.Errorf("%s: %s is not populated: give it a value here and in the pinned JSON", tc.name, f)
			}
		}
	}
}

// zeroField names a field of v (recursively) that holds its zero value,
// or returns "".
func zeroField(v reflect.Value, path string) string {
	if v.Kind() == reflect.Struct && v.Type().PkgPath() == "github.com/tapswitch/tapswitch/cmd/internal/api" {
		for i := range v.NumField() {
			if f := zeroField(v.Field(i), path+"."+v.Type().Field(i).Name); f != "" {
				return f
			}
		}
		return ""
	}
	if v.IsZero() {
		return path
	}
	return ""
}
