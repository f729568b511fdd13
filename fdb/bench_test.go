package fdb

import (
	"encoding/binary"
	"math/rand/v2"
	"runtime"
	"strconv"
	"testing"
	"time"
)

var sizes = []int{1 << 10, 1 << 16, 1 << 20}

// forSizes runs f as a sub-benchmark for each table size, reporting
// allocations. (b.Loop resets the timer on its first call: f's set-up is
// not timed.)
func forSizes(b *testing.B, f func(b *testing.B, n int)) {
	for _, n := range sizes {
		b.Run(sizeName(n), func(b *testing.B) {
			b.ReportAllocs()
			f(b, n)
		})
	}
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20:
		return strconv.Itoa(n>>20) + "M"
	case n >= 1<<10:
		return strconv.Itoa(n>>10) + "k"
	}
	return strconv.Itoa(n)
}

// benchMACs returns n random unicast MACs in a random visiting order, so
// lookups miss the CPU cache as a busy node's would.
func benchMACs(n int) [][6]byte {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([][6]byte, n)
	for i := range out {
		// An odd multiplier is a bijection on 32 bits: no duplicates.
		binary.BigEndian.PutUint32(out[i][2:], uint32(i)*0x9E3779B1)
		out[i][0], out[i][1] = 0x02, byte(r.Uint32())
	}
	return out
}

func filled(b *testing.B, n int) (*Table, [][6]byte) {
	tb := newTable(b, func(c *Config) { c.Limit = n; c.Ageing = 0 }, 1, 2, 3, 4)
	macs := benchMACs(n)
	for i := range macs {
		tb.Learn(1, macs[i][:], PortID(1+i%4), 1)
	}
	return tb, macs
}

// visitOrder is every key of macs (VLAN 1) once, in a random order. The
// table's and the map's lookup benchmarks both read it front to back, so
// they look up the same keys in the same order and neither pays for turning
// MACs into keys or for a cache miss on the key array: what differs is the
// lookup alone.
func visitOrder(macs [][6]byte) []Key {
	keys := make([]Key, len(macs))
	for i := range macs {
		keys[i] = MakeKey(1, macs[i][:])
	}
	r := rand.New(rand.NewPCG(3, 4))
	r.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	return keys
}

func BenchmarkLookup(b *testing.B) {
	forSizes(b, func(b *testing.B, n int) {
		tb, macs := filled(b, n)
		keys := visitOrder(macs)
		mask := len(keys) - 1
		var sink PortID
		for i := 0; b.Loop(); i++ {
			p, _ := tb.LookupKey(keys[i&mask], 1)
			sink += p
		}
		_ = sink
	})
}

func BenchmarkLookupParallel(b *testing.B) {
	forSizes(b, func(b *testing.B, n int) {
		tb, macs := filled(b, n)
		mask := len(macs) - 1
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := rand.IntN(len(macs))
			for pb.Next() {
				tb.Lookup(1, macs[(i*7919)&mask][:], 1)
				i++
			}
		})
	})
}

// BenchmarkLearn measures the per-frame case: a known source refreshed as
// the clock moves on.
func BenchmarkLearn(b *testing.B) {
	forSizes(b, func(b *testing.B, n int) {
		tb, macs := filled(b, n)
		mask := len(macs) - 1
		for i := 0; b.Loop(); i++ {
			j := (i * 7919) & mask
			tb.Learn(1, macs[j][:], PortID(1+j%4), int64(i>>10))
		}
	})
}

// BenchmarkLearnInsert measures new MACs against a full evict-fair table:
// each insert evicts the flooder's oldest entry.
func BenchmarkLearnInsert(b *testing.B) {
	tb := newTable(b, func(c *Config) { c.Limit = 8192; c.Policy = EvictFair }, 1, 2)
	var mac [6]byte
	mac[0] = 0x02
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		binary.BigEndian.PutUint32(mac[2:], uint32(i))
		tb.Learn(1, mac[:], 1, int64(i))
	}
}

// BenchmarkReferenceMapLookup is the yardstick of the issue: one Go map
// lookup at the same table size, the same keys visited in the same order as
// BenchmarkLookup.
func BenchmarkReferenceMapLookup(b *testing.B) {
	forSizes(b, func(b *testing.B, n int) {
		keys := visitOrder(benchMACs(n))
		mp := make(map[Key]int32, n)
		for i, k := range keys {
			mp[k] = int32(1 + i%4)
		}
		mask := n - 1
		var sink int32
		for i := 0; b.Loop(); i++ {
			sink += mp[keys[i&mask]]
		}
		_ = sink
	})
}

// BenchmarkMemoryPerEntry reports the table's heap per entry at 1M entries.
func BenchmarkMemoryPerEntry(b *testing.B) {
	const n = 1 << 20
	macs := benchMACs(n)
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		tb := newTable(b, func(c *Config) { c.Limit = n; c.Ageing = 0 }, 1, 2, 3, 4)
		for i := range macs {
			tb.Learn(1, macs[i][:], PortID(1+i%4), 1)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if tb.Len() != n {
			b.Fatalf("%d entries", tb.Len())
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/entry")
		runtime.KeepAlive(tb)
	}
}

// BenchmarkLearnLookup is the forwarding path's table work for one frame: a
// known source refreshed and a known destination looked up, both new every
// call, in one LearnLookup. Entries age (the default ageing time) and the
// clock moves on 1 µs per call, so every thousandth call finds the
// millisecond moved on and writes the source's new last-seen time, as a
// busy switch does.
func BenchmarkLearnLookup(b *testing.B) {
	forSizes(b, func(b *testing.B, n int) {
		tb := newTable(b, func(c *Config) { c.Limit = n }, 1)
		keys := visitOrder(benchMACs(n))
		const start = int64(time.Hour)
		for _, k := range keys {
			tb.LearnKey(k, 1, start)
		}
		mask := len(keys) - 1
		var sink PortID
		i := 0
		for ; b.Loop(); i++ {
			_, p, _ := tb.LearnLookup(keys[i&mask], 1, keys[(i*7+3)&mask], start+int64(i)*1000)
			sink += p
		}
		_ = sink
		// The refresh ran: the last source seen has the last call's time.
		last := start + int64(i-1)*1000
		tab := tb.tab.Load()
		if at := tab.find(keys[(i-1)&mask]); at < 0 || valSeen(tab.s[at].val.Load()) != millis(last) {
			b.Fatalf("the last source was not refreshed to %d ms", millis(last))
		}
	})
}
