package daemon

import (
	"testing"

	"github.com/tapswitch/tapswitch/cmd/internal/state"
)

func TestPodMarkRoundTrip(t *testing.T) {
	d := &Daemon{instance: "0123456789abcdef"}
	for _, rec := range []state.Pod{
		{Name: "web-1", Netns: "web-1", VLAN: 7, NetnsCreated: true},
		{Name: "db", Netns: "other-ns", VLAN: 1},
		{Name: "cni-abc", Netns: "/var/run/netns/cni-1", NetnsInode: 42, VLAN: 1, ContainerID: "abc", Network: "kube"},
	} {
		alias := d.podMark(&pod{rec: rec})
		m, ok := parseMark(alias)
		if !ok || m.instance != d.instance || m.fields["pod"] != rec.Name || m.vlan() != rec.VLAN ||
			(m.fields["netns"] == "created") != rec.NetnsCreated || m.fields["cid"] != rec.ContainerID || m.fields["net"] != rec.Network {
			t.Errorf("%+v: mark %q read back as %+v %v", rec, alias, m, ok)
		}
		if want := map[bool]string{true: "path", false: m.fields["netns"]}[rec.NetnsInode != 0]; m.fields["netns"] != want {
			t.Errorf("%q: netns kind %q, want %q", alias, m.fields["netns"], want)
		}
	}
	for _, bad := range []string{"", "tapswitch:", "tapswitch:XYZ", "tapswitch:0123456789abcdef pod", "other:0123456789abcdef"} {
		if _, ok := parseMark(bad); ok {
			t.Errorf("parseMark(%q) accepted", bad)
		}
	}
}

func FuzzParseMark(f *testing.F) {
	f.Add("tapswitch:0123456789abcdef pod=web-1 vlan=7 netns=created")
	f.Add("tapswitch:0123456789abcdef")
	f.Fuzz(func(t *testing.T, s string) {
		m, ok := parseMark(s)
		if ok && !state.ValidInstance(m.instance) {
			t.Fatalf("%q: instance %q accepted", s, m.instance)
		}
		if v := m.vlan(); v < 1 || v > 4094 {
			t.Fatalf("%q: vlan %d", s, v)
		}
	})
}
