package sim

// The engine: a min-heap of small events ordered by (time, sequence), and a
// pool of frame buffers. Events hold no pointers and no closures, so the heap
// is one flat slice the garbage collector never scans, and an event costs no
// allocation.

// evKind says what an event does when it fires.
type evKind uint8

const (
	evDeliver  evKind = iota + 1 // a: receiving endpoint, buf: the frame, b: link epoch
	evTick                       // switch ageing and metrics sample (background)
	evStep                       // a: timeline step
	evPing                       // a: ping, b: sequence to send
	evArping                     // a: arping, b: sequence to send
	evFlow                       // a: flow
	evFlood                      // a: MAC flood
	evSpoof                      // a: spoof, b: copies sent so far
	evARPRetry                   // a: host, b: next-hop IPv4 address
	evAssert                     // a: assertion, evaluated now
	evSnapshot                   // a: assertion whose window starts now
)

// event is 32 bytes: time, tie-breaking sequence, and three small operands
// whose meaning depends on kind.
type event struct {
	at   int64
	seq  uint64
	a    int32
	b    uint32
	buf  int32
	kind evKind
}

func (e *event) before(f *event) bool {
	return e.at < f.at || (e.at == f.at && e.seq < f.seq)
}

// queue is a 4-ary min-heap: shallower than a binary heap, and the four
// children of a node share a cache line or two.
type queue struct {
	h   []event
	seq uint64
}

func (q *queue) len() int { return len(q.h) }

func (q *queue) push(e event) {
	q.seq++
	e.seq = q.seq
	q.h = append(q.h, e)
	i := len(q.h) - 1
	for i > 0 {
		p := (i - 1) / 4
		if !q.h[i].before(&q.h[p]) {
			break
		}
		q.h[i], q.h[p] = q.h[p], q.h[i]
		i = p
	}
}

func (q *queue) peek() *event { return &q.h[0] }

func (q *queue) pop() event {
	top := q.h[0]
	n := len(q.h) - 1
	last := q.h[n]
	q.h = q.h[:n]
	if n == 0 {
		return top
	}
	i := 0
	for {
		c := 4*i + 1
		if c >= n {
			break
		}
		m := c
		end := min(c+4, n)
		for j := c + 1; j < end; j++ {
			if q.h[j].before(&q.h[m]) {
				m = j
			}
		}
		if !q.h[m].before(&last) {
			break
		}
		q.h[i] = q.h[m]
		i = m
	}
	q.h[i] = last
	return top
}

// pool hands out frame buffers by index; an event names its frame by index,
// so that the heap stays pointer-free. Buffers come in two sizes, small
// (ARP, pings, flood filler) and full-size, so that a storm of small frames
// does not hold a full-size buffer per copy.
type pool struct {
	bufs  [][]byte
	free  [2][]int32
	size  int // capacity of a full-size buffer
	inUse int
}

const smallBuf = 128

func sizeClass(n int) int {
	if n <= smallBuf {
		return 0
	}
	return 1
}

// get returns a buffer of length n.
func (p *pool) get(n int) int32 {
	p.inUse++
	c := sizeClass(n)
	if k := len(p.free[c]); k > 0 {
		i := p.free[c][k-1]
		p.free[c] = p.free[c][:k-1]
		if cap(p.bufs[i]) < n {
			p.bufs[i] = make([]byte, n)
		}
		p.bufs[i] = p.bufs[i][:n]
		return i
	}
	size := smallBuf
	if c == 1 {
		size = max(n, p.size)
	}
	p.bufs = append(p.bufs, make([]byte, n, size))
	return int32(len(p.bufs) - 1)
}

func (p *pool) put(i int32) {
	p.inUse--
	c := sizeClass(cap(p.bufs[i]))
	p.free[c] = append(p.free[c], i)
}

func (p *pool) bytes(i int32) []byte { return p.bufs[i] }

// copyOf returns a new buffer holding f.
func (p *pool) copyOf(f []byte) int32 {
	i := p.get(len(f))
	copy(p.bufs[i], f)
	return i
}
