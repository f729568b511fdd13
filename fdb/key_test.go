package fdb

import "testing"

// TestKey: a key gives back the VLAN and MAC it was made of, tells group and
// all-zero addresses apart, is never the zero Key, and MakeKey agrees with
// MACKey moved to the VLAN.
func TestKey(t *testing.T) {
	cases := []struct {
		vlan    uint16
		mac     MAC
		group   bool
		unicast bool
	}{
		{0, MAC{}, false, false},
		{1, MAC{0x02, 0x42, 0xac, 0x11, 0x00, 0x02}, false, true},
		{MaxVLAN, MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, true, false},
		{100, MAC{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}, true, false},
		{4094, MAC{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff}, false, true},
		{7, MAC{0, 0, 0, 0, 0, 1}, false, true},
	}
	for _, c := range cases {
		k := MakeKey(c.vlan, c.mac[:])
		if k == 0 {
			t.Errorf("MakeKey(%d, %s) is the zero Key", c.vlan, c.mac)
		}
		if k.VLAN() != c.vlan || k.MAC() != c.mac {
			t.Errorf("MakeKey(%d, %s) gives back %d, %s", c.vlan, c.mac, k.VLAN(), k.MAC())
		}
		if k.IsGroup() != c.group || k.IsUnicast() != c.unicast {
			t.Errorf("%s: group %v unicast %v, want %v %v", c.mac, k.IsGroup(), k.IsUnicast(), c.group, c.unicast)
		}
		if m := MACKey(c.mac[:]); m.InVLAN(c.vlan) != k || m.VLAN() != 0 || m.MAC() != c.mac {
			t.Errorf("MACKey(%s).InVLAN(%d) = %x, MakeKey %x", c.mac, c.vlan, uint64(m.InVLAN(c.vlan)), uint64(k))
		}
		if !k.live() {
			t.Errorf("MakeKey(%d, %s) is not live", c.vlan, c.mac)
		}
	}
	// VLANs are taken modulo 4096, as the table always did.
	if k := MakeKey(MaxVLAN+2, []byte{2, 0, 0, 0, 0, 1}); k.VLAN() != 1 {
		t.Errorf("MakeKey(%d): VLAN %d", MaxVLAN+2, k.VLAN())
	}
	// Different (VLAN, MAC) pairs make different keys.
	seen := map[Key]bool{}
	for v := range uint16(4) {
		for b := range 4 {
			k := MakeKey(v, []byte{2, 0, 0, 0, 0, byte(b)})
			if seen[k] {
				t.Fatalf("key %x made twice", uint64(k))
			}
			seen[k] = true
		}
	}
}
