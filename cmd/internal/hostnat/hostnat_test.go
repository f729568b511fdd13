package hostnat

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
)

func TestRulesFollowConfig(t *testing.T) {
	base := Config{Table: "tapswitch", Gateway: "tsw0", Subnet: netip.MustParsePrefix("10.244.0.0/24")}
	if !base.Empty() || len(base.rules()) != 0 {
		t.Errorf("no rule asked: Empty %v, %d rules", base.Empty(), len(base.rules()))
	}
	svc := base
	svc.ServiceMasquerade = true
	both := svc
	both.ClusterCIDR = netip.MustParsePrefix("10.244.0.0/16")
	for _, tc := range []struct {
		cfg  Config
		want int
	}{{svc, 1}, {both, 2}} {
		rs := tc.cfg.rules()
		if tc.cfg.Empty() || len(rs) != tc.want {
			t.Fatalf("%+v: %d rules, want %d", tc.cfg, len(rs), tc.want)
		}
		for i, r := range rs {
			if _, ok := r[len(r)-1].(*expr.Masq); !ok {
				t.Errorf("rule %d ends with %T, want a masquerade", i, r[len(r)-1])
			}
		}
	}
}

func TestInstallRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Gateway: "tsw0", Subnet: netip.MustParsePrefix("10.0.0.0/24")}, "table"},
		{Config{Table: "t", Gateway: "a-very-long-interface", Subnet: netip.MustParsePrefix("10.0.0.0/24")}, "gateway interface"},
		{Config{Table: "t", Gateway: "tsw0"}, "subnet"},
		{Config{Table: "t", Gateway: "tsw0", Subnet: netip.MustParsePrefix("10.0.0.0/24"), ClusterCIDR: netip.MustParsePrefix("fd00::/8")}, "cluster CIDR"},
	} {
		// check fails before any netlink call, so this needs no privilege.
		_, err := Install(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want it to name %q", tc.cfg, err, tc.want)
		}
	}
}

func TestPrefixMask(t *testing.T) {
	e := inPrefix(12, netip.MustParsePrefix("10.244.3.7/20"), expr.CmpOpEq)
	m := e[1].(*expr.Bitwise).Mask
	a := e[2].(*expr.Cmp).Data
	if string(m) != "\xff\xff\xf0\x00" || string(a) != "\x0a\xf4\x00\x00" {
		t.Errorf("mask % x addr % x, want ff ff f0 00 / 0a f4 00 00", m, a)
	}
}

func TestCommentRoundTrip(t *testing.T) {
	for _, s := range []string{"tapswitch:0123456789abcdef", "x"} {
		if got := parseComment(comment(s)); got != s {
			t.Errorf("comment %q read back as %q", s, got)
		}
	}
	if comment("") != nil || comment(strings.Repeat("a", 255)) != nil {
		t.Error("an empty or over-long comment made user data")
	}
	// Another TLV first (nft's own types), then the comment.
	ud := append([]byte{7, 2, 'a', 'b'}, comment("owner")...)
	if got := parseComment(ud); got != "owner" {
		t.Errorf("after another TLV: %q", got)
	}
}

func FuzzParseComment(f *testing.F) {
	f.Add(comment("tapswitch:0123456789abcdef"))
	f.Add([]byte{0, 200, 'x'})
	f.Fuzz(func(t *testing.T, b []byte) {
		s := parseComment(b)
		if len(s) > len(b) {
			t.Fatalf("comment %q longer than its %d bytes", s, len(b))
		}
	})
}
