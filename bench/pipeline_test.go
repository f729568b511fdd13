package bench

import (
	"encoding/binary"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/tapswitch/tapswitch/fdb"
	vswitch "github.com/tapswitch/tapswitch/switch"
	"github.com/tapswitch/tapswitch/switch/memport"
)

// pipeline is a switch with n Sink ports as the daemon builds it (virtio-net
// header, default FDB and ARP), every port's MAC learned, and per port a
// batch of 32 frames to the other ports in turn.
type pipeline struct {
	ins    []*vswitch.Ingress
	sinks  []*memport.Sink
	frames [][][]byte
}

func pipeMAC(i int) fdb.MAC { return fdb.MAC{0x02, 0x00, 10, 251, byte(i >> 8), byte(i)} }

func pipeFrame(dst, src fdb.MAC, payload int) []byte {
	f := make([]byte, vswitch.VnetHdrLen+14+payload)
	e := f[vswitch.VnetHdrLen:]
	copy(e[0:6], dst[:])
	copy(e[6:12], src[:])
	binary.BigEndian.PutUint16(e[12:14], 0x0800)
	return f
}

func newPipeline(tb testing.TB, n, payload int) *pipeline {
	cfg := vswitch.DefaultConfig()
	cfg.HeaderLen = vswitch.VnetHdrLen
	clk := &vswitch.ManualClock{}
	clk.Set(1e9)
	cfg.Clock = clk
	sw, err := vswitch.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	p := &pipeline{}
	for i := range n {
		s := &memport.Sink{}
		id, err := sw.AddPort(s, vswitch.PortConfig{Name: "p" + strconv.Itoa(i)})
		if err != nil {
			tb.Fatal(err)
		}
		in, err := sw.Ingress(id)
		if err != nil {
			tb.Fatal(err)
		}
		p.ins, p.sinks = append(p.ins, in), append(p.sinks, s)
	}
	bcast := fdb.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	for i, in := range p.ins { // learn every port's MAC
		in.Receive([][]byte{pipeFrame(bcast, pipeMAC(i), payload)})
	}
	for i := range n {
		batch := make([][]byte, 32)
		for j := range batch {
			dst := (i + 1 + j%(n-1)) % n
			batch[j] = pipeFrame(pipeMAC(dst), pipeMAC(i), payload)
		}
		p.frames = append(p.frames, batch)
	}
	return p
}

// BenchmarkPipeline forwards 64-byte known-unicast frames (plus the 10-byte
// virtio-net header) from every port to every other port, in batches of 32
// as a TAP reader delivers them, on one goroutine: frames/s is per core.
// Full learning (a refresh per frame) and lookup; Sink ports only count.
// Compare runs with benchstat.
func BenchmarkPipeline(b *testing.B) {
	for _, n := range []int{2, 4, 8, 16, 32, 64} {
		b.Run("ports="+strconv.Itoa(n), func(b *testing.B) {
			p := newPipeline(b, n, 50)
			b.ReportAllocs()
			sent := 0
			for i := 0; b.Loop(); i++ {
				k := i % n
				p.ins[k].Receive(p.frames[k])
				sent += len(p.frames[k])
			}
			var got uint64
			for _, s := range p.sinks {
				got += s.Frames.Load()
			}
			if got < uint64(sent) {
				b.Fatalf("sinks got %d of %d frames", got, sent)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(sent), "ns/frame")
			b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}

// BenchmarkPipelineParallel is the same with one goroutine per port
// (GOMAXPROCS of them at a time), as the daemon's readers run.
func BenchmarkPipelineParallel(b *testing.B) {
	for _, n := range []int{2, 8, 64} {
		b.Run("ports="+strconv.Itoa(n), func(b *testing.B) {
			p := newPipeline(b, n, 50)
			var next atomicCounter
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				k := int(next.add()) % n
				for pb.Next() {
					p.ins[k].Receive(p.frames[k])
				}
			})
			b.ReportMetric(float64(b.N*32)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}

// TestPipelineDelivers pins what the benchmark relies on: every frame of a
// batch reaches exactly its destination port, allocation-free.
func TestPipelineDelivers(t *testing.T) {
	const n = 8
	p := newPipeline(t, n, 50)
	before := make([]uint64, n)
	for i, s := range p.sinks {
		before[i] = s.Frames.Load()
	}
	allocs := testing.AllocsPerRun(10, func() { p.ins[0].Receive(p.frames[0]) })
	if allocs != 0 {
		t.Errorf("Receive allocates %.1f times per batch, want 0", allocs)
	}
	if got := p.sinks[0].Frames.Load() - before[0]; got != 0 {
		t.Errorf("port 0 got %d of its own frames back", got)
	}
	var total uint64
	for i := 1; i < n; i++ {
		total += p.sinks[i].Frames.Load() - before[i]
	}
	if want := uint64(11 * 32); total != want { // AllocsPerRun runs once more to warm up
		t.Errorf("other ports got %d frames, want %d", total, want)
	}
}

type atomicCounter struct{ v atomic.Int64 }

func (c *atomicCounter) add() int64 { return c.v.Add(1) - 1 }
