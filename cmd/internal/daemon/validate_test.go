package daemon

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/cmd/internal/config"
	"github.com/tapswitch/tapswitch/fdb"
)

func TestValidName(t *testing.T) {
	for _, ok := range []string{"a", "web-1", "p1", "0pod", "a-b-c", "x23456789012345678901234567890123456789012345678901234567890123"} {
		if err := ValidName(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Web", "web_1", "-a", "a-", "a.b", "a/b", "..", "é", "x234567890123456789012345678901234567890123456789012345678901234"} {
		if err := ValidName(bad); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%q accepted or wrong kind: %v", bad, err)
		}
	}
}

func TestDeriveMAC(t *testing.T) {
	m := DeriveMAC(netip.MustParseAddr("10.244.0.7"))
	if m != (fdb.MAC{0x02, 0x00, 10, 244, 0, 7}) || m.IsMulticast() {
		t.Errorf("%v", m)
	}
}

// TestCheckWithoutRoot runs the request checks on a daemon that was never
// started: no device is touched.
func TestCheckWithoutRoot(t *testing.T) {
	d, err := New(config.Default(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.sw.Close()
	s, err := d.checkLocked(api.PodSpec{Name: "web-1", IP: "10.244.0.9"})
	if err != nil {
		t.Fatal(err)
	}
	if s.ip != netip.MustParsePrefix("10.244.0.9/24") || s.vlan != 1 || s.mac != DeriveMAC(s.ip.Addr()) {
		t.Errorf("%+v", s)
	}
	d.pods["a"] = &pod{ip: s.ip, mac: s.mac}
	for _, c := range []struct {
		spec api.PodSpec
		kind error
		want string
	}{
		{api.PodSpec{Name: "b", IP: "10.244.0.9/24"}, api.ErrConflict, `pod "b": ip 10.244.0.9: already used by pod "a"`},
		{api.PodSpec{Name: "b", IP: "10.244.0.10/24", MAC: s.mac.String()}, api.ErrConflict, `pod "b": mac 02:00:0a:f4:00:09: already used by pod "a"`},
		{api.PodSpec{Name: "web-1", IP: "10.0.0.300/24"}, api.ErrInvalid, `pod "web-1": ip "10.0.0.300/24": invalid CIDR`},
		{api.PodSpec{Name: "web-1", IP: "10.245.0.3/24"}, api.ErrInvalid, `pod "web-1": ip "10.245.0.3/24": outside the pod subnet 10.244.0.0/24`},
		{api.PodSpec{Name: "a", IP: "10.244.0.11"}, api.ErrConflict, `pod "a": already exists`},
	} {
		_, err := d.checkLocked(c.spec)
		if !errors.Is(err, c.kind) || err.Error() != c.want {
			t.Errorf("%+v: %v, want %q", c.spec, err, c.want)
		}
	}
}
