package api

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tapswitch/tapswitch/cmd/internal/monitor"
)

type fakeEvents struct {
	fake
	hub *monitor.Hub
}

func (f *fakeEvents) Events() *monitor.Hub { return f.hub }

// TestSlowEventReaderNeverBlocksPublisher: a reader that stops reading
// costs the publisher nothing; it is told how many events it lost.
func TestSlowEventReaderNeverBlocksPublisher(t *testing.T) {
	dir, err := os.MkdirTemp("", "tsapi")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "api.sock")
	f := &fakeEvents{hub: monitor.NewHub()}
	s, err := Listen(path, f, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	release := make(chan struct{})
	var got, lost uint64
	done := make(chan error, 1)
	go func() {
		first := true
		done <- NewClient(path).Events(ctx, func(e monitor.Event) error {
			if first {
				first = false
				<-release // a reader that stalls
			}
			if e.Type == monitor.Dropped {
				lost += e.Count
			} else {
				got++
			}
			return nil
		})
	}()
	for f.hub.Len() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	const n = 50000
	t0 := time.Now()
	for range n {
		f.hub.Publish(monitor.Event{Type: monitor.Learned, Port: "p1"})
	}
	if took := time.Since(t0); took > 2*time.Second {
		t.Errorf("publishing %d events to a stalled reader took %v", n, took)
	}
	close(release)
	time.Sleep(300 * time.Millisecond)
	f.hub.Publish(monitor.Event{Type: monitor.Aged}) // carries the dropped count out
	time.Sleep(300 * time.Millisecond)
	// Closing the server ends the stream at once.
	t1 := time.Now()
	if err := s.Close(context.Background()); err != nil {
		t.Errorf("close: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("stream: %v", err)
	}
	if time.Since(t1) > 2*time.Second {
		t.Errorf("server close with an open stream took %v", time.Since(t1))
	}
	if lost == 0 || got+lost != n+1 {
		t.Errorf("reader got %d events and was told of %d lost; want some lost and %d in all", got, lost, n+1)
	}
}

func TestStreamsOfABackendWithoutThem(t *testing.T) {
	_, c, _ := serve(t)
	err := c.Events(context.Background(), func(monitor.Event) error { return nil })
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("events from a backend without: %v, want not found", err)
	}
	_, err = c.Capture(context.Background(), CaptureSpec{Port: "a"}, nil)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("capture from a backend without: %v, want not found", err)
	}
}

func TestParseCaptureQuery(t *testing.T) {
	for q, ok := range map[string]bool{
		"port=p1": true, "port=p1&count=10&duration=5s": true, "": false, "port=p1&count=-1": false,
		"port=p1&count=x": false, "port=p1&duration=-1s": false, "port=p1&duration=48h": false,
	} {
		v, _ := parseQuery(q)
		_, err := ParseCaptureQuery(v)
		if (err == nil) != ok {
			t.Errorf("%q: err %v, want ok=%v", q, err, ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v is not ErrInvalid", q, err)
		}
	}
}

func parseQuery(q string) (map[string][]string, error) { return url.ParseQuery(q) }
