package config

import (
	"strings"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/fdb"
)

func TestDefaultIsValidAndDocumented(t *testing.T) {
	c := Default()
	if c.Subnet != "10.244.0.0/24" || c.Gateway.Address != "10.244.0.1" || c.Socket != "/run/tapswitch/tapswitch.sock" {
		t.Errorf("defaults: %+v", c)
	}
	if c.FDB.Ageing != 300*time.Second || c.FDB.Limit != fdb.DefaultLimit {
		t.Errorf("fdb defaults: %+v", c.FDB)
	}
	if _, err := Load(""); err != nil {
		t.Fatal(err)
	}
}

func TestFileOverlaysDefault(t *testing.T) {
	c, err := Parse([]byte("subnet: 10.1.2.0/24\ngateway:\n  address: 10.1.2.1/24\nfdb:\n  policy: evict-fair\n  ageing: 30s\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	if c.Subnet != "10.1.2.0/24" || c.FDB.Ageing != 30*time.Second || c.FDB.Limit != fdb.DefaultLimit || c.Gateway.Interface != "tsw0" {
		t.Errorf("overlay: %+v", c)
	}
	fc, _ := c.FDBConfig()
	if fc.Policy != fdb.EvictFair {
		t.Errorf("policy %v", fc.Policy)
	}
}

func TestBadConfigNamesTheKey(t *testing.T) {
	cases := map[string]string{
		"colour: blue":                   "field colour not found",
		"subnet: 10.244.0.0/33":          `subnet "10.244.0.0/33": invalid CIDR`,
		"subnet: 10.244.0.5/24":          "host bits set",
		"subnet: fd00::/64":              "IPv4 only",
		"subnet_v6: fd00::/129":          `subnet_v6 "fd00::/129": invalid CIDR`,
		"subnet_v6: 10.9.0.0/16":         `subnet_v6 "10.9.0.0/16": not an IPv6 CIDR`,
		"subnet_v6: fd00::1/64":          `subnet_v6 "fd00::1/64": host bits set (did you mean fd00::/64?)`,
		"subnet_v6: fd00::/32":           `subnet_v6 "fd00::/32": prefix length /32: want /48 to /124`,
		"subnet_v6: fe80::/64":           `subnet_v6 "fe80::/64": want a global or unique local`,
		"gateway: {address_v6: fd00::1}": `gateway.address_v6 "fd00::1": set without subnet_v6`,
		"{subnet_v6: fd00::/64, gateway: {address_v6: fd01::1}}":    `gateway.address_v6 "fd01::1": not a host address in subnet_v6 fd00::/64`,
		"{subnet_v6: fd00::/64, gateway: {address_v6: fd00::}}":     `gateway.address_v6 "fd00::": not a host address`,
		"{subnet_v6: fd00::/64, gateway: {address_v6: fd00::1/80}}": `gateway.address_v6 "fd00::1/80": prefix length differs from subnet_v6 fd00::/64`,
		"{subnet_v6: fd00::/64, gateway: {address_v6: x}}":          `gateway.address_v6 "x": invalid address`,
		"gateway: {address: 10.9.0.1}":                              "not a host address in subnet",
		"gateway: {address: 10.244.0.255}":                          "not a host address in subnet",
		"gateway: {interface: a-very-long-name}":                    "gateway.interface",
		"gateway: {mac: 01:00:5e:00:00:01}":                         "gateway.mac",
		"fdb: {policy: lru}":                                        "fdb.policy",
		"fdb: {limit: 0}":                                           "fdb limit 0",
		"fdb: {ageing: -1s}":                                        "must not be negative",
		"queues: 0":                                                 "queues 0",
		"batch: 1000":                                               "batch 1000",
		"spin_cpu: 1":                                               "spin_cpu 1: pins the poller, which runs only with spin > 0",
		"nice: -21":                                                 "nice -21: want -20 to 19",
		"nice: 20":                                                  "nice 20: want -20 to 19",
		"log_level: loud":                                           "log_level",
		"netns_prefix: a/b":                                         "netns_prefix",
		"switch: {mtu: 10}":                                         "switch.mtu 10",
		"pods: [{name: a}]":                                         "pods[0]: name and ip are required",
		"pods: [{name: a, ip: 10.244.0.2}, {name: a, ip: 10.244.0.3}]": `pod "a" listed twice`,
	}
	for in, want := range cases {
		_, err := Parse([]byte(in), "test")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to contain %q", in, err, want)
		}
	}
}

func TestNATKeys(t *testing.T) {
	c := Default()
	if c.NAT.Table != "tapswitch" || !c.NAT.ServiceMasquerade || c.NAT.Masquerade.Enabled {
		t.Errorf("nat defaults: %+v", c.NAT)
	}
	c, err := Parse([]byte("nat: {masquerade: {enabled: true, cluster_cidr: 10.244.0.0/16}}"), "test")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := c.NAT.ClusterCIDR(); err != nil || p.String() != "10.244.0.0/16" {
		t.Errorf("cluster CIDR %v, %v", p, err)
	}
	for in, want := range map[string]string{
		"nat: {masquerade: {enabled: true}}":                              "nat.masquerade.cluster_cidr: required",
		"nat: {masquerade: {enabled: true, cluster_cidr: 10.9.0.0/16}}":   "does not contain the pod subnet",
		"nat: {masquerade: {enabled: true, cluster_cidr: 10.244.0.0/28}}": "does not contain the pod subnet",
		"nat: {masquerade: {enabled: true, cluster_cidr: 10.244.0.1/16}}": "host bits set",
		"nat: {masquerade: {enabled: true, cluster_cidr: fd00::/8}}":      "want an IPv4 CIDR",
		"nat: {table: \"a b\"}":                                           "nat.table",
		"nat: {table: \"\"}":                                              "nat.table",
	} {
		_, err := Parse([]byte(in), "test")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to contain %q", in, err, want)
		}
	}
}

// TestIPv6Subnet: subnet_v6 is optional; its gateway defaults to the
// subnet's first address or takes the one given, bare or CIDR.
func TestIPv6Subnet(t *testing.T) {
	c := Default()
	if sub, gw, err := c.IPv6(); err != nil || sub.IsValid() || gw.IsValid() {
		t.Fatalf("default: %v %v %v, want no IPv6", sub, gw, err)
	}
	for in, want := range map[string]string{
		"subnet_v6: fd00:10:244::/64":                                             "fd00:10:244::/64 fd00:10:244::1",
		"{subnet_v6: fd00:10:244::/64, gateway: {address_v6: fd00:10:244::fe}}":   "fd00:10:244::/64 fd00:10:244::fe",
		"{subnet_v6: fd00:10:244::/64, gateway: {address_v6: fd00:10:244::9/64}}": "fd00:10:244::/64 fd00:10:244::9",
	} {
		c, err := Parse([]byte(in), "test")
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		sub, gw, _ := c.IPv6()
		if got := sub.String() + " " + gw.String(); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}
