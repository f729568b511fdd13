package render

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/fdb"
)

func TestFDBLooksLikeBridgeFDBShow(t *testing.T) {
	var b bytes.Buffer
	FDB(&b, "tapswitch", []api.FDBEntry{
		{MAC: fdb.MAC{2, 0, 10, 244, 0, 1}, VLAN: 1, PortName: "tsw0", Kind: "local"},
		{MAC: fdb.MAC{2, 0, 10, 244, 0, 2}, VLAN: 1, PortName: "pod1", Kind: "learned", Age: 1.25},
	})
	want := "02:00:0a:f4:00:01 dev tsw0 vlan 1 master tapswitch permanent\n" +
		"02:00:0a:f4:00:02 dev pod1 vlan 1 master tapswitch used 1.2s\n"
	if b.String() != want {
		t.Errorf("got\n%swant\n%s", b.String(), want)
	}
}

func TestPortsShowsTAPDrops(t *testing.T) {
	var b bytes.Buffer
	n := uint64(42)
	err := Ports(&b, []api.Port{
		{ID: 1, Name: "pod1", Kind: api.KindPod, State: api.PodUp, DeviceDrops: &n},
		{Name: "pod2", Kind: api.KindPod, State: api.PodGone},
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 || !strings.HasSuffix(lines[0], "DROPS  TAP-DROPS") {
		t.Fatalf("got\n%s", b.String())
	}
	if f := strings.Fields(lines[1]); f[len(f)-1] != "42" {
		t.Errorf("pod1's TAP-DROPS: %q", lines[1])
	}
	if f := strings.Fields(lines[2]); f[len(f)-1] != "-" {
		t.Errorf("gone pod2's TAP-DROPS: %q", lines[2])
	}
}

// TestDualStackListings: a dual-stack pod's row shows both addresses; the
// neighbour listing writes an IPv6 neighbour as ip(8) does.
func TestDualStackListings(t *testing.T) {
	var b bytes.Buffer
	pods := []api.Pod{
		{Name: "a", State: api.PodUp, Port: 2, Netns: "a", IP: "10.244.0.2/24", IPs: []string{"10.244.0.2/24", "fd00::2/64"}, MAC: "02:00:0a:f4:00:02", VLAN: 1, Queues: 2},
		{Name: "b", State: api.PodUp, Port: 3, Netns: "b", IP: "10.244.0.3/24", MAC: "02:00:0a:f4:00:03", VLAN: 1, Queues: 2},
	}
	if err := Pods(&b, pods); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "10.244.0.2/24,fd00::2/64") || !strings.Contains(b.String(), "10.244.0.3/24") {
		t.Errorf("pod list:\n%s", b.String())
	}
	b.Reset()
	m, _ := fdb.ParseMAC("02:00:0a:f4:00:02")
	ns := []api.Neighbour{{IP: netip.MustParseAddr("fd00::2"), MAC: m, VLAN: 1, Port: 2, PortName: "a", Age: 1.5}}
	if err := Neighbours(&b, ns); err != nil {
		t.Fatal(err)
	}
	if got, want := b.String(), "fd00::2 dev a lladdr 02:00:0a:f4:00:02 vlan 1 age 1.5s\n"; got != want {
		t.Errorf("neighbours: %q, want %q", got, want)
	}
}
