package render

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/fdb"
	vswitch "github.com/tapswitch/tapswitch/switch"
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
		{PortInfo: vswitch.PortInfo{ID: 1, Name: "pod1"}, Kind: api.KindPod, State: api.PodUp, DeviceDrops: &n},
		{PortInfo: vswitch.PortInfo{Name: "pod2"}, Kind: api.KindPod, State: api.PodGone},
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
