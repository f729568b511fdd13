package tap

import (
	"encoding/binary"
	"errors"
	"net"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/netns"
)

// forceURing turns the opt-in io_uring writes on, whatever the
// environment says, and returns the function that restores the setting.
func forceURing() func() {
	was := useURing
	useURing = true
	return func() { useURing = was }
}

// BenchmarkWriteSmall writes batches of 32 small frames into a pod whose
// stack drops them, through the queue's io_uring and one write(2) each.
func BenchmarkWriteSmall(b *testing.B) {
	defer forceURing()()
	dev, _ := benchPod(b, "s")
	frames := make([][]byte, 32)
	for i := range frames {
		frames[i] = aFrame()
	}
	q := dev.Queues()[0]
	if _, err := q.WriteBatch(frames); err != nil {
		b.Fatal(err)
	}
	ring := q.ring
	for _, mode := range []string{"write", "uring"} {
		b.Run(mode, func(b *testing.B) {
			q.ring = nil
			if mode == "uring" {
				if ring == nil {
					b.Skip("no io_uring")
				}
				q.ring = ring
			}
			b.ReportAllocs()
			for b.Loop() {
				if n, err := q.WriteBatch(frames); err != nil || n != len(frames) {
					b.Fatal(n, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(frames)), "ns/frame")
		})
	}
	q.ring = ring
}

// TestWriteBatchDelivers writes numbered frames into a pod in batches, through
// the queue's io_uring and one write(2) at a time, and checks on a packet
// socket inside the pod that every frame arrived once, in order, intact.
func TestWriteBatchDelivers(t *testing.T) {
	needRoot(t)
	defer forceURing()()
	dev, cfg := newPod(t, uniquePrefix(t), "10.250.0.2/24", 1)
	q := dev.Queues()[0]
	var fd int
	err := netns.FromPath(netns.PathOf(cfg.NetNS)).Run(func() error {
		var err error
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL))); err != nil {
			return err
		}
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})

	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	const total, batch = 300, 32
	seq := 0
	send := func() {
		for seq < total {
			var frames [][]byte
			for range min(batch, total-seq) {
				f := aFrame()
				binary.BigEndian.PutUint32(f[VnetHdrLen+14:], uint32(seq))
				frames = append(frames, f)
				seq++
			}
			if n, err := q.WriteBatch(frames); err != nil || n != len(frames) {
				t.Fatalf("WriteBatch of %d = %d, %v", len(frames), n, err)
			}
		}
	}
	for _, mode := range []string{"uring", "write"} {
		q.wmu.Lock()
		ring := q.ring
		if mode == "write" {
			q.ring = nil
		}
		q.wmu.Unlock()
		if mode == "uring" && useURing {
			// The first batch set the ring up.
			seq = 0
			send()
			q.wmu.Lock()
			ring = q.ring
			q.wmu.Unlock()
			if ring == nil {
				t.Log("no io_uring here: both passes write one frame per call")
			}
		} else {
			seq = 0
			send()
		}
		buf := make([]byte, 2048)
		next := 0
		for next < total {
			unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 2})
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				t.Fatalf("%s: %d of %d frames arrived: %v", mode, next, total, err)
			}
			if n < 18 || buf[12] != 0x88 || buf[13] != 0xb5 {
				continue // the pod's own traffic
			}
			if got := binary.BigEndian.Uint32(buf[14:]); int(got) != next {
				t.Fatalf("%s: frame %d arrived where %d was due", mode, got, next)
			}
			next++
		}
		q.wmu.Lock()
		q.ring = ring
		q.wmu.Unlock()
	}
	// A bad frame still stops the batch there, with its error.
	n, err := q.WriteBatch([][]byte{aFrame(), aFrame(), make([]byte, 4), aFrame()})
	if n != 2 || !errors.Is(err, unix.EINVAL) {
		t.Fatalf("WriteBatch(good, good, short, good) = %d, %v; want 2, EINVAL", n, err)
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
