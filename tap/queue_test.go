package tap

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/netns"
)

// podSender returns a UDP socket inside the pod, connected to a fake neighbour
// with a static MAC, so that each write puts exactly one frame on the pod's TAP
// without waiting for ARP.
func podSender(t testing.TB, cfg PodConfig) int {
	t.Helper()
	peer := cfg.Addr.Addr().Next().Next().Next()
	fd := -1
	err := netns.FromPath(netns.PathOf(cfg.NetNS)).Run(func() error {
		link, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		err = netlink.NeighAdd(&netlink.Neigh{
			LinkIndex:    link.Attrs().Index,
			IP:           peer.AsSlice(),
			HardwareAddr: net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99},
			State:        netlink.NUD_PERMANENT,
		})
		if err != nil {
			return err
		}
		if fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		return unix.Connect(fd, &unix.SockaddrInet4{Port: 9, Addr: peer.As4()})
	})

	if err != nil {
		t.Fatalf("sender in %s: %v", cfg.NetNS, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// blockedReader starts a ReadBatch loop on q and returns the error that ends it.
func blockedReader(q *Queue) <-chan error {
	errc := make(chan error, 1)
	go func() {
		arena, frames := make([]byte, BufSize), make([][]byte, 1)
		for {
			if _, err := q.ReadBatch(arena, frames); err != nil {
				errc <- err
				return
			}
		}
	}()
	return errc
}

func waitErr(t *testing.T, errc <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: ReadBatch still blocked after 5s", what)
		return nil
	}
}

// aFrame is a broadcast frame of a local experimental EtherType, which a pod's
// stack receives and drops.
func aFrame() []byte {
	f := make([]byte, VnetHdrLen+60)
	copy(f[VnetHdrLen:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x88, 0xb5})
	return f
}

func TestCloseUnblocksReadBatch(t *testing.T) {
	needRoot(t)
	dev, _ := newPod(t, uniquePrefix(t), "10.250.0.2/24", 2)
	var errcs []<-chan error
	for _, q := range dev.Queues() {
		errcs = append(errcs, blockedReader(q))
	}
	time.Sleep(50 * time.Millisecond)
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	for _, errc := range errcs {
		if err := waitErr(t, errc, "after Close"); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("ReadBatch after Close: %v, want os.ErrClosed", err)
		}
	}
	if _, err := dev.Queues()[0].WriteBatch([][]byte{aFrame()}); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("WriteBatch after Close: %v, want os.ErrClosed", err)
	}
}

func TestNetNSRemovalFailsQueues(t *testing.T) {
	needRoot(t)
	dev, cfg := newPod(t, uniquePrefix(t), "10.250.0.2/24", 1)
	errc := blockedReader(dev.Queues()[0])
	time.Sleep(50 * time.Millisecond)
	if err := netns.DeleteNamed(cfg.NetNS); err != nil {
		t.Fatal(err)
	}
	err := waitErr(t, errc, "after netns removal")
	t.Logf("reader sees: %v", err)
	if !IsGone(err) || !errors.Is(err, unix.EBADFD) {
		t.Fatalf("ReadBatch after netns removal: %v, want EBADFD", err)
	}
	_, err = dev.Queues()[0].WriteBatch([][]byte{aFrame()})
	t.Logf("writer sees: %v", err)
	if !IsGone(err) {
		t.Fatalf("WriteBatch after netns removal: %v, want EBADFD", err)
	}
}

func TestDeletePodFailsQueues(t *testing.T) {
	needRoot(t)
	dev, cfg := newPod(t, uniquePrefix(t), "10.250.0.2/24", 1)
	errc := blockedReader(dev.Queues()[0])
	time.Sleep(50 * time.Millisecond)
	if err := DeletePod(cfg, false); err != nil {
		t.Fatal(err)
	}
	if err := waitErr(t, errc, "after DeletePod"); !IsGone(err) {
		t.Fatalf("ReadBatch after DeletePod: %v, want EBADFD", err)
	}
	if err := dev.Check(); !IsGone(err) {
		t.Fatalf("Check after DeletePod: %v, want ErrGone", err)
	}
	if err := DeletePod(cfg, true); err != nil {
		t.Fatalf("DeletePod again: %v", err)
	}
}

// Queues from Attach were opened inside the pod's namespace and keep it alive, so
// only Check notices its removal.
func TestAttachedQueuesHoldNetNS(t *testing.T) {
	needRoot(t)
	dev, cfg := newPod(t, uniquePrefix(t), "10.250.0.2/24", 1)
	dev.Close()
	dev, err := Attach(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	if err := dev.Check(); err != nil {
		t.Fatalf("Check on a live device: %v", err)
	}
	errc := blockedReader(dev.Queues()[0])
	if err := netns.DeleteNamed(cfg.NetNS); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		t.Logf("ReadBatch failed after all (kernel changed?): %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := dev.Check(); !IsGone(err) {
		t.Fatalf("Check after netns removal: %v, want ErrGone", err)
	}
	dev.Close()
	if err := waitErr(t, errc, "after Close"); !errors.Is(err, os.ErrClosed) && !IsGone(err) {
		t.Fatalf("ReadBatch after Close: %v", err)
	}
}

func TestReadBatchTakesWhatIsQueued(t *testing.T) {
	needRoot(t)
	dev, cfg := newPod(t, uniquePrefix(t), "10.250.0.2/24", 1)
	fd := podSender(t, cfg)
	for range 5 {
		if _, err := unix.Write(fd, []byte("hello")); err != nil {
			t.Fatal(err)
		}
	}
	// Room for one frame of any size after four small ones.
	arena := make([]byte, BufSize+4*128)
	frames := make([][]byte, 8)
	got := 0
	for got < 5 {
		n, err := dev.Queues()[0].ReadBatch(arena, frames)
		if err != nil {
			t.Fatal(err)
		}
		if got == 0 && n < 2 {
			t.Errorf("first ReadBatch returned %d frames with 5 queued", n)
		}
		if got == 0 && n != 5 {
			t.Errorf("first ReadBatch returned %d frames with 5 small ones queued and room for them", n)
		}
		for _, f := range frames[:n] {
			if len(f) == VnetHdrLen+14+20+8+5 && string(f[len(f)-5:]) == "hello" {
				got++
			}
		}
	}
}

func TestWriteBatchStopsAtBadFrame(t *testing.T) {
	needRoot(t)
	dev, _ := newPod(t, uniquePrefix(t), "10.250.0.2/24", 1)
	n, err := dev.Queues()[0].WriteBatch([][]byte{aFrame(), make([]byte, 4), aFrame()})
	if n != 1 || !errors.Is(err, unix.EINVAL) {
		t.Fatalf("WriteBatch(good, short, good) = %d, %v; want 1, EINVAL", n, err)
	}
}

func TestBatchesDoNotAllocate(t *testing.T) {
	needRoot(t)
	dev, cfg := newPod(t, uniquePrefix(t), "10.250.0.2/24", 1)
	q := dev.Queues()[0]
	fd := podSender(t, cfg)
	arena, rframes := make([]byte, 2*BufSize), make([][]byte, 2)
	payload := []byte("x")
	frames := [][]byte{aFrame(), aFrame()}
	read := testing.AllocsPerRun(100, func() {
		// Each round queues a frame first, so ReadBatch never waits for long.
		if _, err := unix.Write(fd, payload); err != nil {
			t.Fatal(err)
		}
		// A call that read nothing would allocate nothing either.
		if n, err := q.ReadBatch(arena, rframes); err != nil || n == 0 {
			t.Fatalf("ReadBatch = %d, %v; want a frame", n, err)
		}
	})
	write := testing.AllocsPerRun(100, func() {
		if n, err := q.WriteBatch(frames); err != nil || n != len(frames) {
			t.Fatalf("WriteBatch = %d, %v; want %d", n, err, len(frames))
		}
	})
	if read != 0 || write != 0 {
		t.Fatalf("allocations per call: ReadBatch %v, WriteBatch %v; want 0", read, write)
	}
}

// BenchmarkWriteBatch measures the write path into a pod, whose stack drops the
// frames: 16 frames of 1514 bytes per batch.
func BenchmarkWriteBatch(b *testing.B) {
	dev, _ := benchPod(b, "")
	frames := make([][]byte, 16)
	for i := range frames {
		frames[i] = make([]byte, VnetHdrLen+1514)
		copy(frames[i], aFrame())
	}
	q := dev.Queues()[0]
	b.ReportAllocs()
	b.SetBytes(int64(len(frames) * 1514))
	for b.Loop() {
		if _, err := q.WriteBatch(frames); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(frames)), "ns/frame")
}

// TestReadArenaStopsShortOfBufSize: after a frame, readArena reads another
// only while BufSize of arena is left, since the kernel would silently cut a
// longer frame to a shorter buffer. Two 100-byte frames fit an arena of
// BufSize+150 with BufSize to spare after the first, not after the second;
// the queued 65000-byte frame is left for the next call, not truncated.
func TestReadArenaStopsShortOfBufSize(t *testing.T) {
	queued := []int{100, 100, 65000}
	var room []int // len(b) of each read
	read := func(fd uintptr, b []byte) (int, error) {
		room = append(room, len(b))
		if len(room) > len(queued) {
			return 0, unix.EAGAIN
		}
		m := min(queued[len(room)-1], len(b)) // as the kernel: cut to fit
		for i := range b[:m] {
			b[i] = byte(len(room))
		}
		return m, nil
	}
	arena, frames := make([]byte, BufSize+150), make([][]byte, 8)
	n, err := readArena(7, arena, frames, read)
	if n != 2 || err != nil {
		t.Fatalf("readArena = %d, %v; want 2, nil (reads had room %v)", n, err, room)
	}
	for i, r := range room {
		if r < BufSize {
			t.Errorf("read %d had %d bytes of room, less than BufSize (%d): a larger frame would be cut", i+1, r, BufSize)
		}
	}
	if len(room) != 2 {
		t.Errorf("%d reads (room %v); want 2", len(room), room)
	}
	for i, f := range frames[:n] {
		if len(f) != 100 || f[0] != byte(i+1) || f[99] != byte(i+1) || cap(f) != 100 {
			t.Errorf("frame %d: len %d cap %d, first byte %d; want read %d's 100 bytes", i, len(f), cap(f), f[0], i+1)
		}
	}
	if &frames[1][0] != &arena[100] {
		t.Error("frame 1 does not follow frame 0 in the arena")
	}
}
