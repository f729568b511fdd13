package render

import (
	"bytes"
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
