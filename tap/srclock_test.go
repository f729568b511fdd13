package tap

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestLockSource: with the lock, frames the pod sends from its own MAC reach
// the TAP's reader and frames from any other source are dropped in the
// pod's kernel (counted as the TAP's tx drops); unlocked, both arrive.
func TestLockSource(t *testing.T) {
	needRoot(t)
	dev, cfg := newPod(t, uniquePrefix(t), "10.250.0.2/24", 1)
	own := dev.MAC()
	// One frame from the pod's MAC and one from another, written with a
	// packet socket inside the pod.
	fd := podPacketSocket(t, cfg)
	frame := func(src net.HardwareAddr, tag byte) []byte {
		f := make([]byte, 60)
		copy(f, []byte{0x02, 0, 0, 0, 0, 0x99})
		copy(f[6:], src)
		f[12], f[13] = 0x88, 0xb5 // local experimental EtherType
		f[14] = tag
		return f
	}
	other := net.HardwareAddr{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee}
	q := dev.Queues()[0]
	arena, frames := make([]byte, 2*BufSize), make([][]byte, 8)
	// got sends one frame of each source and returns the tags that reached
	// the switch's side of the TAP.
	got := func(round byte) map[byte]bool {
		t.Helper()
		for _, f := range [][]byte{frame(own, round), frame(other, round+1)} {
			// With the qdisc bypassed, the TAP's drop comes back to
			// the writer as ENOBUFS.
			if _, err := unix.Write(fd, f); err != nil && err != unix.ENOBUFS {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		seen := map[byte]bool{}
		deadline := time.Now().Add(300 * time.Millisecond)
		for time.Now().Before(deadline) {
			done := make(chan int, 1)
			go func() {
				n, _ := q.ReadBatch(arena, frames)
				done <- n
			}()
			select {
			case n := <-done:
				for _, f := range frames[:n] {
					if len(f) >= VnetHdrLen+15 && f[VnetHdrLen+12] == 0x88 && f[VnetHdrLen+13] == 0xb5 {
						seen[f[VnetHdrLen+14]] = true
					}
				}
			case <-time.After(time.Until(deadline)):
				// Wake the pending read with a frame of the pod's own.
				unix.Write(fd, frame(own, 0xff))
				<-done
			}
			if seen[round] && seen[round+1] {
				break
			}
		}
		return seen
	}
	if s := got(1); !s[1] || !s[2] {
		t.Fatalf("unlocked: frames that arrived %v, want both", s)
	}
	if err := dev.LockSource(own); err != nil {
		t.Fatal(err)
	}
	if err := dev.LockSource(own); err != nil { // again: replaces
		t.Fatal(err)
	}
	if s := got(3); !s[3] || s[4] {
		t.Fatalf("locked to %v: frames that arrived %v, want only the one from the pod's MAC (3)", own, s)
	}
	if err := dev.UnlockSource(); err != nil {
		t.Fatal(err)
	}
	if err := dev.UnlockSource(); err != nil { // again: nothing to remove
		t.Fatal(err)
	}
	if s := got(5); !s[5] || !s[6] {
		t.Fatalf("unlocked again: frames that arrived %v, want both", s)
	}
	if err := dev.LockSource(net.HardwareAddr{1, 2}); err == nil {
		t.Error("LockSource with a 2-byte MAC: no error")
	}
}

// TestDropped: frames a pod sends while nobody reads its TAP pile up in the
// queue until it is full; past that the kernel drops them, and Dropped
// counts every one of those drops.
func TestDropped(t *testing.T) {
	needRoot(t)
	dev, cfg := newPod(t, uniquePrefix(t), "10.250.0.2/24", 1)
	if err := dev.SetTxQueueLen(16); err != nil {
		t.Fatal(err)
	}
	before, err := dev.Dropped()
	if err != nil {
		t.Fatal(err)
	}
	fd := podPacketSocket(t, cfg)
	f := make([]byte, 60)
	copy(f, []byte{0x02, 0, 0, 0, 0, 0x99})
	copy(f[6:], dev.MAC())
	f[12], f[13] = 0x88, 0xb5
	refused := 0
	for range 200 {
		if _, err := unix.Write(fd, f); err == unix.ENOBUFS {
			refused++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	after, err := dev.Dropped()
	if err != nil {
		t.Fatal(err)
	}
	// The pod's kernel may queue frames of its own meanwhile (and have
	// them dropped too): at least ours.
	if refused < 100 || after-before < uint64(refused) {
		t.Errorf("200 frames into a 16-frame queue nobody reads: %d refused, Dropped went %d -> %d", refused, before, after)
	}
	t.Logf("%d of 200 refused; Dropped %d -> %d", refused, before, after)
}
