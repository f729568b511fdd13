package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
)

// lockedFake is the fake Backend made safe for concurrent requests.
type lockedFake struct {
	mu sync.Mutex
	*fake
}

func (l *lockedFake) AddPod(ctx context.Context, s PodSpec) (Pod, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fake.AddPod(ctx, s)
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count fds: %v", err)
	}
	return len(ents)
}

// settle polls until the goroutines and open fds are back to at most the
// given counts (plus a small slack for the runtime's and the test
// framework's own), or the time is up, and says what it saw.
func settle(t *testing.T, what string, goroutines, fds int, within time.Duration) {
	t.Helper()
	const slack = 2
	deadline := time.Now().Add(within)
	for {
		g, f := runtime.NumGoroutine(), openFDs(t)
		if g <= goroutines+slack && f <= fds+slack {
			t.Logf("%s: %d goroutines (baseline %d), %d fds (baseline %d)", what, g, goroutines, f, fds)
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%s: after %v still %d goroutines (baseline %d) and %d fds (baseline %d): a leak\n%s",
				what, within, g, goroutines, f, fds, buf)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestControlSocketUnderHostileClients opens 1,000 concurrent connections
// to the control socket, each with one request: well-formed GETs, bad
// JSON, unknown fields, trailing data, bodies over MaxBody (20 KiB and
// 1 MiB), unknown routes. Meanwhile slow clients connect and say nothing,
// send a request a byte at a time, trickle a header forever, or stall in
// the middle of a body. Every request is answered with the right status or
// fails cleanly (a huge body may see the connection closed under it);
// slow clients are cut off by the server's timeouts; and after the
// connections close, goroutines and fds return to their baseline, both
// with the server still running and after it is closed.
func TestControlSocketUnderHostileClients(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: waits for the server's 10 s read timeout")
	}
	runtime.GC()
	g0, f0 := runtime.NumGoroutine(), openFDs(t)
	dir, err := os.MkdirTemp("", "tsapi")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "api.sock")
	srv, err := Listen(path, &lockedFake{fake: &fake{}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			srv.Close(context.Background())
		}
	}()
	g1, f1 := runtime.NumGoroutine(), openFDs(t)
	dial := func() (net.Conn, error) { return net.Dial("unix", path) }

	// Slow clients.
	type slowResult struct {
		name string
		took time.Duration
		got  string // first line of an answer, or how the connection ended
	}
	slow := make(chan slowResult, 8)
	var slowWG sync.WaitGroup
	slowClient := func(name string, fn func(c net.Conn) string) {
		slowWG.Add(1)
		go func() {
			defer slowWG.Done()
			c, err := dial()
			if err != nil {
				slow <- slowResult{name, 0, "dial: " + err.Error()}
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second)) // the test's own bound
			t0 := time.Now()
			got := fn(c)
			slow <- slowResult{name, time.Since(t0), got}
		}()
	}
	// answer reads the status line, or says how the connection ended.
	answer := func(c net.Conn) string {
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
				return "closed by the server"
			}
			return "read: " + err.Error()
		}
		return strings.TrimSpace(line)
	}
	trickle := func(c net.Conn, s string, every time.Duration) error {
		for i := 0; i < len(s); i++ {
			if _, err := c.Write([]byte{s[i]}); err != nil {
				return err
			}
			time.Sleep(every)
		}
		return nil
	}
	slowClient("silent", func(c net.Conn) string { return answer(c) })
	slowClient("byte-by-byte", func(c net.Conn) string {
		if err := trickle(c, "GET /v1/status HTTP/1.1\r\nHost: tapswitch\r\n\r\n", 20*time.Millisecond); err != nil {
			return "write: " + err.Error()
		}
		return answer(c)
	})
	slowClient("slowloris", func(c net.Conn) string {
		trickle(c, "GET /v1/status HTTP/1.1\r\nHost: tapswitch\r\nX-A: "+strings.Repeat("a", 200), 100*time.Millisecond)
		return answer(c)
	})
	slowClient("stalled-body", func(c net.Conn) string {
		fmt.Fprintf(c, "POST /v1/pods HTTP/1.1\r\nHost: tapswitch\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\":")
		return answer(c)
	})

	// 1,000 concurrent clients, one request each.
	type req struct {
		name, method, path, body string
		want                     int
		mayCut                   bool // a huge body: the server may close the connection while it is sent
	}
	kinds := []req{
		{"status", "GET", "/v1/status", "", 200, false},
		{"pods", "GET", "/v1/pods", "", 200, false},
		{"unknown-pod", "GET", "/v1/pods/zz", "", 404, false},
		{"unknown-route", "GET", "/v2/nothing", "", 404, false},
		{"bad-json", "POST", "/v1/pods", `{"name":"x","ip":`, 400, false},
		{"not-json", "POST", "/v1/pods", "\x00\xff<xml/>", 400, false},
		{"unknown-field", "POST", "/v1/pods", `{"name":"x","ip":"10.0.0.2/24","evil":true}`, 400, false},
		{"trailing-data", "POST", "/v1/pods", `{"name":"x","ip":"10.0.0.2/24"} {}`, 400, false},
		{"body-20KiB", "POST", "/v1/pods", `{"name":"` + strings.Repeat("x", 20<<10) + `"}`, 400, true},
		{"body-1MiB", "POST", "/v1/pods", `{"name":"` + strings.Repeat("x", 1<<20) + `"}`, 400, true},
		{"valid", "POST", "/v1/pods", `{"name":"b","ip":"10.0.0.2/24"}`, 201, false},
	}
	tr := &http.Transport{
		DialContext:       func(ctx context.Context, _, _ string) (net.Conn, error) { return dial() },
		DisableKeepAlives: true,
	}
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	const clients = 1000
	start := make(chan struct{})
	type result struct {
		kind   string
		status int
		err    error
	}
	results := make(chan result, clients)
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		k := kinds[i%len(kinds)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			var body io.Reader
			if k.body != "" {
				body = strings.NewReader(k.body)
			}
			r, err := http.NewRequest(k.method, "http://tapswitch"+k.path, body)
			if err != nil {
				results <- result{k.name, 0, err}
				return
			}
			resp, err := hc.Do(r)
			if err != nil {
				results <- result{k.name, 0, err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode >= 400 && !strings.Contains(string(b), `"error"`) {
				err = fmt.Errorf("status %d without a JSON error: %q", resp.StatusCode, b)
			}
			results <- result{k.name, resp.StatusCode, err}
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	took := time.Since(t0)
	close(results)
	byKind := make(map[string]*req)
	for i := range kinds {
		byKind[kinds[i].name] = &kinds[i]
	}
	tally := make(map[string]int)
	for r := range results {
		k := byKind[r.kind]
		switch {
		case r.err == nil && r.status == k.want:
			tally[fmt.Sprintf("%s: %d", r.kind, r.status)]++
		case r.err != nil && k.mayCut && (errors.Is(r.err, syscall.EPIPE) || errors.Is(r.err, syscall.ECONNRESET)):
			tally[r.kind+": connection closed while sending the body"]++
		default:
			t.Errorf("%s %s (%s): status %d, error %v; want %d", k.method, k.path, r.kind, r.status, r.err, k.want)
		}
	}
	lines := make([]string, 0, len(tally))
	for k, n := range tally {
		lines = append(lines, fmt.Sprintf("%4d  %s", n, k))
	}
	sort.Strings(lines)
	t.Logf("%d concurrent requests answered in %v:\n%s", clients, took.Round(time.Millisecond), strings.Join(lines, "\n"))
	if took > 20*time.Second {
		t.Errorf("1,000 requests took %v while slow clients held connections", took)
	}

	// The slow clients end by the server's timeouts (5 s for a header,
	// 10 s for a whole request), not by the test's 20 s deadline.
	slowWG.Wait()
	close(slow)
	for s := range slow {
		t.Logf("slow client %-13s after %5.1fs: %s", s.name, s.took.Seconds(), s.got)
		switch s.name {
		case "byte-by-byte":
			if s.got != "HTTP/1.1 200 OK" {
				t.Errorf("a request sent byte by byte within the header timeout: %q, want 200", s.got)
			}
		case "silent", "slowloris":
			// net/http closes silently when the deadline hits between
			// reads, and answers 400 when it hits inside a header line
			// it has begun; either way the header timeout ended it.
			ended := s.got == "closed by the server" || s.name == "slowloris" && strings.HasPrefix(s.got, "HTTP/1.1 400")
			if !ended || s.took > 8*time.Second {
				t.Errorf("slow client %s: %q after %v, want closed (or, mid-header, a 400) by the server's 5 s header timeout", s.name, s.got, s.took)
			}
		case "stalled-body":
			if !(s.got == "closed by the server" || strings.HasPrefix(s.got, "HTTP/1.1 400")) || s.took > 13*time.Second {
				t.Errorf("slow client %s: %q after %v, want a 400 or a close by the 10 s read timeout", s.name, s.got, s.took)
			}
		}
	}

	tr.CloseIdleConnections()
	settle(t, "server running, clients gone", g1, f1, 15*time.Second)
	if err := srv.Close(context.Background()); err != nil {
		t.Errorf("close: %v", err)
	}
	closed = true
	settle(t, "server closed", g0, f0, 5*time.Second)
}
