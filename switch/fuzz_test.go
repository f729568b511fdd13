package vswitch_test

import (
	"net/netip"
	"testing"

	"github.com/tapswitch/tapswitch/fdb"
	vswitch "github.com/tapswitch/tapswitch/switch"
	"github.com/tapswitch/tapswitch/switch/memport"
)

// FuzzReceive feeds arbitrary bytes to the frame path of a switch with
// VLANs, a trunk, ARP suppression and guard (NDP's too): it must never panic, never
// forward a frame shorter than an Ethernet header, and count every input
// frame once.
func FuzzReceive(f *testing.F) {
	f.Add(ether(bcast, mac(1), 0x0800, 50), false)
	f.Add(tagged(ether(bcast, mac(1), 0x0806, 28), 10), false)
	f.Add(make([]byte, 13), false)
	f.Add(append(make([]byte, 10), ether(bcast, mac(1), 0x0800, 60)...), true)
	f.Add(naFrame(f, mac(1), ip6(1)), false)
	f.Add(tagged(raFrame(f, mac(1), ll6(1)), 10), false)
	f.Add(append(make([]byte, 10), naFrame(f, mac(2), ip6(1))...), true)
	f.Fuzz(func(t *testing.T, frame []byte, vnet bool) {
		cfg := vswitch.DefaultConfig()
		cfg.Clock = &vswitch.ManualClock{}
		cfg.ARP.Suppress, cfg.ARP.Guard = true, true
		if vnet {
			cfg.HeaderLen = vswitch.VnetHdrLen
		}
		sw, err := vswitch.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ports := []*memport.Port{memport.New(), memport.New(), memport.New()}
		pcs := []vswitch.PortConfig{
			{Name: "a", PVID: 10, IPs: []netip.Addr{ip4(1), ip6(1)}},
			{Name: "b", PVID: 10},
			{Name: "t", Trunk: true, Allowed: []uint16{10, 20}},
		}
		var ids []fdb.PortID
		for i, p := range ports {
			id, err := sw.AddPort(p, pcs[i])
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		for _, id := range ids {
			in, _ := sw.Ingress(id)
			in.Receive([][]byte{frame, frame})
		}
		for _, p := range ports {
			for _, g := range p.Take() {
				if len(g) < cfg.HeaderLen+14 {
					t.Fatalf("forwarded a %d-byte frame", len(g))
				}
			}
		}
		for _, pi := range sw.Ports() {
			if pi.Counters.RxFrames != 2 {
				t.Fatalf("port %s counted %d frames, want 2", pi.Name, pi.Counters.RxFrames)
			}
		}
	})
}

// FuzzCheckVnetHdr: the header check reads only the header and accepts
// nothing that points outside the frame.
func FuzzCheckVnetHdr(f *testing.F) {
	f.Add([]byte{1, 1, 66, 0, 0xa8, 5, 34, 0, 16, 0}, 65000)
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 60)
	f.Fuzz(func(t *testing.T, h []byte, ethLen int) {
		if len(h) < vswitch.VnetHdrLen || ethLen < 0 || ethLen > vswitch.MaxFrame {
			return
		}
		if !vswitch.CheckVnetHdr(h, ethLen) {
			return
		}
		d := vswitch.DecodeVnetHdr(h)
		if d.Flags&1 != 0 && (int(d.CsumStart) < 14 || int(d.CsumStart)+int(d.CsumOffset)+2 > ethLen) {
			t.Fatalf("accepted csum_start %d offset %d for a %d-byte frame", d.CsumStart, d.CsumOffset, ethLen)
		}
		if d.GSOType != 0 && (d.GSOSize == 0 || int(d.HdrLen) > ethLen) {
			t.Fatalf("accepted GSO header %+v for a %d-byte frame", d, ethLen)
		}
	})
}
