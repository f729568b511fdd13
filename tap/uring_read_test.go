package tap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkReadSmall fills a queue with small frames from a pod's socket
// and times ReadBatch draining it, batch frames per call, through the
// queue's io_uring and with one read(2) per frame.
func BenchmarkReadSmall(b *testing.B) {
	dev, cfg := benchPod(b, "r")
	fd := podSender(b, cfg)
	q := dev.Queues()[0]
	const queued = 256
	for _, batch := range []int{8, 32} {
		arena, frames := make([]byte, ArenaSize(batch)), make([][]byte, batch)
		for _, mode := range []string{"read", "uring"} {
			b.Run(fmt.Sprintf("%s/batch%d", mode, batch), func(b *testing.B) {
				q.rmu.Lock()
				if q.rring != nil {
					q.rring.close()
				}
				q.rring, q.rtried, q.rbulk = nil, true, 0
				if mode == "uring" {
					var err error
					if q.rring, err = newReadRing(batch); err != nil {
						q.rmu.Unlock()
						b.Skip("no io_uring:", err)
					}
				}
				q.rmu.Unlock()
				b.ReportAllocs()
				total := 0
				for b.Loop() {
					b.StopTimer()
					for range queued {
						if _, err := unix.Write(fd, []byte("x")); err != nil {
							b.Fatal(err)
						}
					}
					b.StartTimer()
					for got := 0; got < queued; {
						n, err := q.ReadBatch(arena, frames)
						if err != nil {
							b.Fatal(err)
						}
						got += n
					}
					total += queued
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(total), "ns/frame")
			})
		}
	}
}

// BenchmarkReadEmpty times what a reader pays to find its queue empty
// before it parks: a read(2) that fails with EAGAIN, or a burst of reads
// through the ring that all do.
func BenchmarkReadEmpty(b *testing.B) {
	dev, _ := benchPod(b, "e")
	q := dev.Queues()[0]
	buf := make([]byte, BufSize)
	b.Run("read", func(b *testing.B) {
		for b.Loop() {
			// The pod's own traffic (IPv6 solicitations) may still come.
			if _, err := unix.Read(q.fd, buf); err != unix.EAGAIN && err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, k := range []int{1, 2, 8, 32} {
		b.Run(fmt.Sprintf("uring%d", k), func(b *testing.B) {
			rr, err := newReadRing(k)
			if err != nil {
				b.Skip("no io_uring:", err)
			}
			defer rr.close()
			for b.Loop() {
				if _, err := rr.round(q.fd, k); err != unix.EAGAIN && err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// forceURingRead turns the ring's reads on, whatever the environment
// says, and returns the function that restores the setting.
func forceURingRead() func() {
	was := useURingRead
	useURingRead = true
	return func() { useURingRead = was }
}

// ringReads reports whether q reads through its ring now, and whether
// io_uring works here at all (it may be disabled by sysctl or refused by a
// seccomp profile, and then every queue reads with read(2)).
func ringReads(t *testing.T, q *Queue) bool {
	t.Helper()
	q.rmu.Lock()
	on := q.rring != nil
	q.rmu.Unlock()
	if !on {
		r, err := newURing(2)
		if err == nil {
			r.close()
			t.Fatal("io_uring works here, but the queue reads with read(2)")
		}
		t.Logf("no io_uring here (%v): checking the read(2) path only", err)
	}
	return on
}

// seqSender sends UDP datagrams from inside the pod, each starting with
// its sequence number, so that each puts one frame on the pod's TAP.
type seqSender struct {
	fd   int
	next uint32
}

func (s *seqSender) send(t *testing.T, size int) {
	t.Helper()
	b := make([]byte, size)
	binary.BigEndian.PutUint32(b, s.next)
	for i := 4; i < size; i++ {
		b[i] = byte(s.next) ^ byte(i)
	}
	if _, err := unix.Write(s.fd, b); err != nil {
		t.Fatalf("send datagram %d of %d bytes: %v", s.next, size, err)
	}
	s.next++
}

// seqOf returns the sequence number of a frame seqSender sent, checking
// that it arrived whole; ok is false for the pod's own traffic.
func seqOf(t *testing.T, f []byte) (seq uint32, size int, ok bool) {
	t.Helper()
	const ipOff = VnetHdrLen + 14
	if len(f) < ipOff+28 || f[VnetHdrLen+12] != 0x08 || f[VnetHdrLen+13] != 0x00 || f[ipOff+9] != unix.IPPROTO_UDP {
		return 0, 0, false
	}
	if binary.BigEndian.Uint16(f[ipOff+22:]) != 9 {
		return 0, 0, false
	}
	ipLen := int(binary.BigEndian.Uint16(f[ipOff+2:]))
	if len(f) != ipOff+ipLen {
		t.Fatalf("frame of %d bytes carries an IP packet of %d: cut or padded", len(f), ipLen)
	}
	p := f[ipOff+28:]
	seq = binary.BigEndian.Uint32(p)
	for i := 4; i < len(p); i++ {
		if p[i] != byte(seq)^byte(i) {
			t.Fatalf("datagram %d: byte %d is %#x, want %#x", seq, i, p[i], byte(seq)^byte(i))
		}
	}
	return seq, len(p), true
}

// TestRingReadDeliversInOrder sends bursts of datagrams from a pod, small
// ones and some near 64 KiB, and reads them in batches of 8 through the
// queue's ring: every frame must arrive once, in order, whole, whichever
// way it was read (the first of a burst with read(2), the rest through the
// ring, a large one with read(2) for a while, or held over to the next
// call when the arena had no room for it).
func TestRingReadDeliversInOrder(t *testing.T) {
	needRoot(t)
	defer forceURingRead()()
	cfg := podConfig(uniquePrefix(t), "10.250.0.2/24", 1)
	cfg.MTU = 65000 // large frames without GSO
	dev, cfg := createPod(t, cfg)
	q := dev.Queues()[0]
	s := &seqSender{fd: podSender(t, cfg)}
	arena, frames := make([]byte, ArenaSize(8)), make([][]byte, 8)
	var sizes []int // of each datagram sent
	next := uint32(0)
	read := func(what string) {
		t.Helper()
		for next < s.next {
			n, err := q.ReadBatch(arena, frames)
			if err != nil {
				t.Fatalf("%s: ReadBatch: %v", what, err)
			}
			for _, f := range frames[:n] {
				seq, size, ok := seqOf(t, f)
				if !ok {
					continue
				}
				if seq != next || size != sizes[seq] {
					t.Fatalf("%s: datagram %d (%d bytes) arrived where %d (%d bytes) was due", what, seq, size, next, sizes[next])
				}
				next++
			}
		}
	}
	burst := func(what string, pattern ...int) {
		t.Helper()
		for range 10 {
			for _, size := range pattern {
				sizes = append(sizes, size)
				s.send(t, size)
			}
		}
		read(what)
	}
	// The first call sets the ring up.
	burst("one", 20)
	on := ringReads(t, q)
	viaRing := func() int {
		if !on {
			return 0
		}
		return q.rring.read
	}
	before := viaRing()
	burst("small", 20, 30, 40, 50, 60, 70, 80, 90, 100, 1400, 1000)
	if on && q.rbulk != 0 {
		t.Fatalf("small frames put the queue in read(2) mode for %d calls", q.rbulk)
	}
	if on && viaRing() == before {
		t.Fatal("bursts of small frames: none read through the ring")
	}
	burst("large", 20, 60000, 30, 64000, 64000, 40)
	if on && q.rbulk == 0 {
		t.Fatal("after frames larger than a page the queue still reads through the ring")
	}
	burst("large, read(2)", 10, 60000, 10)
	// Back to the ring once small frames came for long enough.
	for range bulkHold {
		burst("small after large", 30)
	}
	if on && q.rbulk != 0 {
		t.Fatalf("after %d calls with small frames the queue reads with read(2) for %d more", bulkHold, q.rbulk)
	}
	before = viaRing()
	burst("small again", 20, 30, 40, 50)
	if on && viaRing() == before {
		t.Fatal("small frames after the large ones: none read through the ring")
	}
}

// TestRingReadReportsGone: a reader blocked in ReadBatch with the ring on
// sees os.ErrClosed when its queue is closed, and, after frames read
// through the ring, an error for which IsGone reports true when the pod is
// deleted.
func TestRingReadReportsGone(t *testing.T) {
	needRoot(t)
	defer forceURingRead()()
	blocked := func(q *Queue) <-chan error {
		errc := make(chan error, 1)
		go func() {
			arena, frames := make([]byte, ArenaSize(8)), make([][]byte, 8)
			for {
				if _, err := q.ReadBatch(arena, frames); err != nil {
					errc <- err
					return
				}
			}
		}()
		time.Sleep(50 * time.Millisecond)
		return errc
	}

	dev, _ := newPod(t, uniquePrefix(t), "10.250.0.2/24", 1)
	q := dev.Queues()[0]
	q.rmu.Lock()
	q.setUpReadRing(8)
	q.rmu.Unlock()
	ringReads(t, q)
	errc := blocked(q)
	q.Close()
	if err := waitErr(t, errc, "after Close"); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("ReadBatch after Close: %v, want os.ErrClosed", err)
	}

	dev, cfg := newPod(t, uniquePrefix(t), "10.250.0.2/24", 1)
	q = dev.Queues()[0]
	s := &seqSender{fd: podSender(t, cfg)}
	for range 20 {
		s.send(t, 32)
	}
	arena, frames := make([]byte, ArenaSize(8)), make([][]byte, 8)
	for got := 0; got < 20; {
		n, err := q.ReadBatch(arena, frames)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range frames[:n] {
			if _, _, ok := seqOf(t, f); ok {
				got++
			}
		}
	}
	ringReads(t, q)
	errc = blocked(q)
	if err := DeletePod(cfg, false); err != nil {
		t.Fatal(err)
	}
	if err := waitErr(t, errc, "after DeletePod"); !IsGone(err) {
		t.Fatalf("ReadBatch after DeletePod: %v, want EBADFD", err)
	}
}

// TestReadRingDrainsKeptReads: a kernel that kept a read of a round
// outstanding (as it does for a read without RWF_NOWAIT on an empty queue)
// would write a later frame into a slot behind the reader's back. The
// round must then cancel such reads and wait for them before it gives the
// ring up: a frame sent afterwards is read with read(2), not taken by a
// forgotten read.
func TestReadRingDrainsKeptReads(t *testing.T) {
	needRoot(t)
	dev, cfg := newPod(t, uniquePrefix(t), "10.250.0.2/24", 1)
	q := dev.Queues()[0]
	rr, err := newReadRing(4)
	if err != nil {
		t.Skipf("no io_uring here: %v", err)
	}
	defer rr.close()
	buf := make([]byte, BufSize)
	for { // the pod's own traffic first
		if _, err := unix.Read(q.fd, buf); err == unix.EAGAIN {
			break
		}
	}
	rr.flags = 0 // reads the kernel may keep
	n, err := rr.round(q.fd, 4)
	if _, ok := err.(ringError); !ok || n != 0 {
		t.Fatalf("round with reads kept = %d, %v; want a ringError", n, err)
	}
	s := &seqSender{fd: podSender(t, cfg)}
	s.send(t, 32)
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		m, err := unix.Read(q.fd, buf)
		if err == unix.EAGAIN {
			time.Sleep(time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if seq, _, ok := seqOf(t, buf[:m]); ok && seq == 0 {
			return
		}
	}
	t.Fatal("the datagram sent after the round never came to read(2): a cancelled read took it")
}
