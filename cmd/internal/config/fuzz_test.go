package config

import (
	"strings"
	"testing"
)

// FuzzParse: any bytes give a valid config or an error that names the
// file; never a panic, never an invalid config accepted.
func FuzzParse(f *testing.F) {
	f.Add([]byte(DefaultYAML()))
	f.Add([]byte("subnet: 10.0.0.0/8\nfdb: {limit: -1}\n"))
	f.Add([]byte("pods: [{name: a, ip: 10.244.0.9/24}]\n"))
	f.Add([]byte("subnet_v6: fd00:10:244::/64\ngateway: {address_v6: fd00:10:244::fe/64}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b, "fuzz.yaml")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config Validate refuses: %v", err)
		}
		if sub, gw, err := c.IPv6(); err != nil || sub.IsValid() != (c.SubnetV6 != "") || sub.IsValid() && (!sub.Contains(gw) || gw == sub.Addr()) {
			t.Fatalf("accepted subnet_v6 %q gateway.address_v6 %q: %v %v %v", c.SubnetV6, c.Gateway.AddressV6, sub, gw, err)
		}
	})
}
