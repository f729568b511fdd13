package vswitch_test

import (
	"encoding/binary"
	"strconv"
	"testing"

	"github.com/tapswitch/tapswitch/fdb"
	vswitch "github.com/tapswitch/tapswitch/switch"
	"github.com/tapswitch/tapswitch/switch/memport"
)

// benchSwitch is a switch with n Sink ports and 1k MACs learned behind them.
func benchSwitch(b *testing.B, n int, mod func(*vswitch.Config)) (*vswitch.Switch, []fdb.PortID, []*memport.Sink) {
	cfg := vswitch.DefaultConfig()
	clk := &vswitch.ManualClock{}
	clk.Set(1e9)
	cfg.Clock = clk
	if mod != nil {
		mod(&cfg)
	}
	sw, err := vswitch.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]fdb.PortID, n)
	sinks := make([]*memport.Sink, n)
	for i := range n {
		sinks[i] = &memport.Sink{}
		ids[i], err = sw.AddPort(sinks[i], vswitch.PortConfig{Name: "p" + strconv.Itoa(i)})
		if err != nil {
			b.Fatal(err)
		}
	}
	return sw, ids, sinks
}

func benchMAC(i int) fdb.MAC {
	return fdb.MAC{0x02, 0x42, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
}

// BenchmarkForwardKnownUnicast is the per-frame cost of the pod-to-pod path:
// parse, learn (refresh), lookup, hand to an in-memory port; 64-byte frames,
// 1k MACs, batches of 32 as a TAP reader delivers them.
func BenchmarkForwardKnownUnicast(b *testing.B) {
	const macs = 1024
	sw, ids, sinks := benchSwitch(b, 2, nil)
	in0, _ := sw.Ingress(ids[0])
	in1, _ := sw.Ingress(ids[1])
	// Half the MACs live behind port 1; port 0 sends to them from the other
	// half.
	for i := range macs / 2 {
		f := ether(bcast, benchMAC(i), 0x0800, 50)
		in1.Receive([][]byte{f})
	}
	const batch = 32
	frames := make([][]byte, macs/2)
	for i := range frames {
		frames[i] = ether(benchMAC(i*7%(macs/2)), benchMAC(macs/2+i), 0x0800, 50)
	}
	b.ReportAllocs()
	b.ResetTimer()
	sent := 0
	for i := 0; b.Loop(); i++ {
		j := (i * batch) % len(frames)
		in0.Receive(frames[j : j+batch])
		sent += batch
	}
	b.StopTimer()
	if got := sinks[1].Frames.Load(); got < uint64(sent) {
		b.Fatalf("port 1 got %d of %d frames", got, sent)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(sent), "ns/frame")
	b.ReportMetric(float64(sent)/b.Elapsed().Seconds()/1e6, "Mframes/s")
}

// BenchmarkForwardPodFlow is the same path for the common case of a pod's
// TCP flow: one source and one destination per batch (the per-batch memo
// skips the table for repeats).
func BenchmarkForwardPodFlow(b *testing.B) { benchPodFlow(b, nil) }

// benchPodFlow sends batches of one flow from port 0 to port 1, with m (if
// any) mirroring both ports, and returns how many frames it sent.
func benchPodFlow(b *testing.B, m vswitch.Mirror) uint64 {
	sw, ids, sinks := benchSwitch(b, 2, nil)
	in0, _ := sw.Ingress(ids[0])
	in1, _ := sw.Ingress(ids[1])
	for i := range 512 {
		in1.Receive([][]byte{ether(bcast, benchMAC(i), 0x0800, 50)})
	}
	if m != nil {
		sw.SetMirror(ids[0], m)
		sw.SetMirror(ids[1], m)
	}
	frames := make([][]byte, 32)
	for i := range frames {
		frames[i] = ether(benchMAC(7), benchMAC(600), 0x0800, 50)
	}
	n := pump(b, in0, frames)
	if got := sinks[1].Frames.Load(); got < n {
		b.Fatalf("port 1 got %d of %d frames", got, n)
	}
	return n
}

// BenchmarkForwardPodFlowIPv6 is BenchmarkForwardPodFlow with IPv6 TCP
// segments: what the NDP pre-filter adds to IPv6 traffic that is not NDP.
func BenchmarkForwardPodFlowIPv6(b *testing.B) {
	sw, ids, sinks := benchSwitch(b, 2, nil)
	in0, _ := sw.Ingress(ids[0])
	in1, _ := sw.Ingress(ids[1])
	in1.Receive([][]byte{ether6(bcast, benchMAC(600), tcp6(ip6(100), ip6(7), 0))})
	frames := make([][]byte, 32)
	for i := range frames {
		frames[i] = ether6(benchMAC(600), benchMAC(7), tcp6(ip6(7), ip6(100), 0))
	}
	n := pump(b, in0, frames)
	if got := sinks[1].Frames.Load(); got < n {
		b.Fatalf("port 1 got %d of %d frames", got, n)
	}
	if p, _ := sw.Port(ids[0]); p.Counters.Flooded != 0 {
		b.Fatalf("%d frames flooded: the destination was not learned", p.Counters.Flooded)
	}
}

// BenchmarkNDPAdvertisement is the cost of an NA a pod sends about itself,
// with the guard on: parsed, checksummed, judged, learned, flooded to 3
// ports. NDP is rare next to data; this bounds what a pod flooding NAs
// costs.
func BenchmarkNDPAdvertisement(b *testing.B) {
	sw, ids, sinks := benchSwitch(b, 4, func(c *vswitch.Config) { c.ARP.Guard = true })
	if err := sw.ARP().Bind(ids[0], ip6(1)); err != nil {
		b.Fatal(err)
	}
	in0, _ := sw.Ingress(ids[0])
	frames := make([][]byte, 32)
	for i := range frames {
		frames[i] = naFrame(b, benchMAC(1), ip6(1))
	}
	n := pump(b, in0, frames)
	if got := sinks[3].Frames.Load(); got != n {
		b.Fatalf("port 3 got %d of %d frames", got, n)
	}
	if st := sw.ARP().Stats(); st.NDPSnooped != n {
		b.Fatalf("snooped %d of %d", st.NDPSnooped, n)
	}
}

// pump has in receive frames until the benchmark ends, reports the time
// per frame and returns how many frames it sent.
func pump(b *testing.B, in *vswitch.Ingress, frames [][]byte) uint64 {
	b.ReportAllocs()
	var n uint64
	for b.Loop() { // resets the timer on its first call
		in.Receive(frames)
		n += uint64(len(frames))
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/frame")
	return n
}

// BenchmarkReferenceMapLookup is the yardstick: one Go map[uint64]int32
// lookup at the same table size (1k), in this package so both run together.
func BenchmarkReferenceMapLookup(b *testing.B) {
	const macs = 1024
	mp := make(map[uint64]int32, macs)
	keys := make([]uint64, macs)
	for i := range keys {
		m := benchMAC(i)
		keys[i] = uint64(binary.BigEndian.Uint16(m[:2]))<<32 | uint64(binary.BigEndian.Uint32(m[2:]))
		mp[keys[i]] = int32(i & 3)
	}
	b.ReportAllocs()
	var sink int32
	for i := 0; b.Loop(); i++ {
		sink += mp[keys[(i*7)&(macs-1)]]
	}
	_ = sink
}

// BenchmarkForwardBroadcast floods 64-byte broadcasts to 7 of 8 ports.
func BenchmarkForwardBroadcast(b *testing.B) {
	sw, ids, sinks := benchSwitch(b, 8, nil)
	in0, _ := sw.Ingress(ids[0])
	frames := make([][]byte, 32)
	for i := range frames {
		frames[i] = ether(bcast, benchMAC(i), 0x0800, 50)
	}
	n := pump(b, in0, frames)
	if sinks[7].Frames.Load() != n {
		b.Fatalf("port 7 got %d of %d", sinks[7].Frames.Load(), n)
	}
}

// BenchmarkForwardMACFlood sends frames from ever-new source MACs into a
// full table, under both policies.
func BenchmarkForwardMACFlood(b *testing.B) {
	for _, pol := range []fdb.Policy{fdb.StopLearning, fdb.EvictFair} {
		b.Run(pol.String(), func(b *testing.B) {
			sw, ids, _ := benchSwitch(b, 4, func(c *vswitch.Config) { c.FDB.Limit = 8192; c.FDB.Policy = pol })
			in0, _ := sw.Ingress(ids[0])
			frames := make([][]byte, 32)
			for i := range frames {
				frames[i] = ether(benchMAC(1<<20+i), benchMAC(i), 0x0800, 50)
			}
			b.ReportAllocs()
			b.ResetTimer()
			n := 0
			for i := 0; b.Loop(); i++ {
				for j, f := range frames {
					binary.BigEndian.PutUint32(f[8:], uint32(i*32+j)) // new source
				}
				in0.Receive(frames)
				n += len(frames)
			}
			b.StopTimer()
			if e := sw.FDB().Len(); e > 8192 {
				b.Fatalf("table at %d past its limit", e)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/frame")
		})
	}
}

// BenchmarkForwardSuperFrame passes 64 KiB GSO frames with a virtio-net
// header: the cost must not depend on the frame's size (no copy).
func BenchmarkForwardSuperFrame(b *testing.B) {
	sw, ids, _ := benchSwitch(b, 2, func(c *vswitch.Config) { c.HeaderLen = vswitch.VnetHdrLen })
	in0, _ := sw.Ingress(ids[0])
	in1, _ := sw.Ingress(ids[1])
	hdr := make([]byte, vswitch.VnetHdrLen)
	in1.Receive([][]byte{append(hdr, ether(bcast, benchMAC(2), 0x0800, 50)...)})
	f := make([]byte, vswitch.VnetHdrLen+65000)
	vswitch.VnetHdr{Flags: 1, GSOType: vswitch.GSOTCPv4, HdrLen: 66, GSOSize: 1448, CsumStart: 34, CsumOffset: 16}.Encode(f)
	copy(f[vswitch.VnetHdrLen:], ether(benchMAC(2), benchMAC(1), 0x0800, 50))
	frames := [][]byte{f}
	b.ReportAllocs()
	b.SetBytes(int64(len(f)))
	for b.Loop() {
		in0.Receive(frames)
	}
}
