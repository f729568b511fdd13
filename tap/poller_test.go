package tap

import (
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/netns"
)

// polledPod is a one-queue pod opened for a Poller, with a UDP sender in it.
func polledPod(t *testing.T, ns, addr string) (*Device, int) {
	t.Helper()
	cfg := podConfig(ns, addr, 1)
	cfg.Polled = true
	dev, cfg := createPod(t, cfg)
	return dev, podSender(t, cfg)
}

func newPoller(t *testing.T, spin time.Duration) *Poller {
	t.Helper()
	p, err := NewPoller(PollerConfig{Spin: spin, Batch: 4, CPU: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// counter is a PollHandler that counts the "hello" datagrams it is given.
type counter struct {
	mu    sync.Mutex
	hello int
	at    []time.Time // when each batch came
	pause time.Duration
}

func (c *counter) handle(frames [][]byte) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at = append(c.at, time.Now())
	for _, f := range frames {
		if len(f) == VnetHdrLen+14+20+8+5 && string(f[len(f)-5:]) == "hello" {
			c.hello++
		}
	}
	return c.pause
}

func (c *counter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hello
}

func send(t *testing.T, fd, n int) {
	t.Helper()
	for range n {
		if _, err := unix.Write(fd, []byte("hello")); err != nil {
			t.Fatal(err)
		}
	}
}

func waitCount(t *testing.T, c *counter, want int, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.count() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: handler saw %d hello frames, want %d", what, c.count(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := c.count(); got != want {
		t.Fatalf("%s: handler saw %d hello frames, want exactly %d", what, got, want)
	}
}

func noErr(err error) { panic("unexpected queue error: " + err.Error()) }

func TestPollerReadsEveryQueue(t *testing.T) {
	needRoot(t)
	for _, spin := range []time.Duration{0, 200 * time.Microsecond} {
		t.Run("spin="+spin.String(), func(t *testing.T) {
			prefix := uniquePrefix(t)
			a, fa := polledPod(t, prefix+"a", "10.250.0.2/24")
			b, fb := polledPod(t, prefix+"b", "10.250.1.2/24")
			p := newPoller(t, spin)
			var ca, cb counter
			if err := p.Add(a.Queues()[0], ca.handle, noErr); err != nil {
				t.Fatal(err)
			}
			if err := p.Add(b.Queues()[0], cb.handle, noErr); err != nil {
				t.Fatal(err)
			}
			// More than a batch each, so that a queue is read over
			// several handler calls and the other is not starved.
			send(t, fa, 9)
			send(t, fb, 7)
			waitCount(t, &ca, 9, "pod a")
			waitCount(t, &cb, 7, "pod b")
			if _, err := a.Queues()[0].ReadBatch(make([]byte, BufSize), make([][]byte, 1)); err == nil || !strings.Contains(err.Error(), "Poller") {
				t.Errorf("ReadBatch on a polled queue: %v, want a refusal naming the Poller", err)
			}
		})
	}
}

func TestPollerRemoveStopsReading(t *testing.T) {
	needRoot(t)
	a, fa := polledPod(t, uniquePrefix(t), "10.250.0.2/24")
	p := newPoller(t, 0)
	var c counter
	if err := p.Add(a.Queues()[0], c.handle, noErr); err != nil {
		t.Fatal(err)
	}
	send(t, fa, 2)
	waitCount(t, &c, 2, "before Remove")
	p.Remove(a.Queues()[0])
	p.Remove(a.Queues()[0]) // twice: nothing
	send(t, fa, 3)
	time.Sleep(100 * time.Millisecond)
	if got := c.count(); got != 2 {
		t.Fatalf("handler saw %d frames after Remove, want the 2 from before", got)
	}
	// The frames wait in the TAP for whoever reads it next.
	if err := p.Add(a.Queues()[0], c.handle, noErr); err != nil {
		t.Fatal(err)
	}
	waitCount(t, &c, 5, "after re-Add")
}

func TestPollerPause(t *testing.T) {
	needRoot(t)
	a, fa := polledPod(t, uniquePrefix(t), "10.250.0.2/24")
	p := newPoller(t, 0)
	const pause = 100 * time.Millisecond
	c := counter{pause: pause}
	if err := p.Add(a.Queues()[0], c.handle, noErr); err != nil {
		t.Fatal(err)
	}
	send(t, fa, 1)
	waitCount(t, &c, 1, "first frame")
	send(t, fa, 1)
	waitCount(t, &c, 2, "after the pause")
	c.mu.Lock()
	gap := c.at[1].Sub(c.at[0])
	c.mu.Unlock()
	if gap < pause {
		t.Fatalf("second batch %v after the first, inside the %v pause the handler asked for", gap, pause)
	}
}

func TestPollerReportsGoneDevice(t *testing.T) {
	needRoot(t)
	ns := uniquePrefix(t)
	// No sender socket: it would hold the namespace alive.
	cfg := podConfig(ns, "10.250.0.2/24", 1)
	cfg.Polled = true
	a, _ := createPod(t, cfg)
	p := newPoller(t, 0)
	var c counter
	errc := make(chan error, 2)
	if err := p.Add(a.Queues()[0], c.handle, func(err error) { errc <- err }); err != nil {
		t.Fatal(err)
	}
	if err := netns.DeleteNamed(ns); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !IsGone(err) {
			t.Fatalf("onErr got %v, want a gone device (EBADFD)", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("onErr not called after the pod's namespace was removed")
	}
	p.Remove(a.Queues()[0]) // already dropped: nothing
	select {
	case err := <-errc:
		t.Fatalf("onErr called twice: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestPollerRefuses(t *testing.T) {
	needRoot(t)
	dev, _ := newPod(t, uniquePrefix(t), "10.250.0.2/24", 1)
	p := newPoller(t, 0)
	var c counter
	err := p.Add(dev.Queues()[0], c.handle, noErr)
	if err == nil || !strings.Contains(err.Error(), "not opened for a poller") || !strings.Contains(err.Error(), dev.Queues()[0].label) {
		t.Errorf("Add of a netpoller queue: %v, want a refusal naming the queue", err)
	}
	if _, err := NewPoller(PollerConfig{Batch: 0, CPU: -1}); err == nil {
		t.Error("NewPoller with batch 0: no error")
	}
	if _, err := NewPoller(PollerConfig{Batch: 1, CPU: 4096}); err == nil || !strings.Contains(err.Error(), "cpu 4096") {
		t.Errorf("NewPoller pinned to CPU 4096: %v, want an error naming it", err)
	}
	p.Close()
	p.Close()
	a, _ := polledPod(t, uniquePrefix(t)+"x", "10.250.1.2/24")
	if err := p.Add(a.Queues()[0], c.handle, noErr); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Add to a closed poller: %v, want closed", err)
	}
}

// TestEpollPoll: the raw zero-timeout epoll_wait reports nothing on an idle
// set, without blocking, and an eventfd once it is readable.
func TestEpollPoll(t *testing.T) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(epfd)
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(efd)}); err != nil {
		t.Fatal(err)
	}
	events := make([]unix.EpollEvent, 4)
	if n, err := epollPoll(epfd, events); n != 0 || err != nil {
		t.Fatalf("epollPoll on an idle set = %d, %v; want 0, nil", n, err)
	}
	one := [8]byte{1}
	if _, err := unix.Write(efd, one[:]); err != nil {
		t.Fatal(err)
	}
	n, err := epollPoll(epfd, events)
	if n != 1 || err != nil {
		t.Fatalf("epollPoll with the eventfd readable = %d, %v; want 1, nil", n, err)
	}
	if events[0].Fd != int32(efd) || events[0].Events&unix.EPOLLIN == 0 {
		t.Fatalf("event %+v; want EPOLLIN on fd %d", events[0], efd)
	}
}
