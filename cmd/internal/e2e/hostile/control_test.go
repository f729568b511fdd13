package hostile

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/cmd/internal/nodetest"
	"github.com/tapswitch/tapswitch/internal/podnet"
)

// TestControlSocketStormLeavesDataplaneAlone sends 1,000 concurrent
// requests, listings and malformed pod adds, to a real daemon's control
// socket while pod a pings pod b every 5 ms: every request gets an HTTP
// answer, no ping is lost, and the pods and their ports are as before.
// (cmd/internal/api's TestControlSocketUnderHostileClients covers slow
// clients and leaks against a fake backend.)
func TestControlSocketStormLeavesDataplaneAlone(t *testing.T) {
	e := nodetest.New(t)
	d := e.Start()
	e.AddQuietPod("a", 2)
	e.AddQuietPod("b", 3)
	e.MustPing(t, "a", 3, 2)

	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", e.Cfg.Socket)
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	reqs := []struct{ method, path, body string }{
		{"GET", "/v1/ports", ""},
		{"GET", "/v1/fdb", ""},
		{"GET", "/v1/stats", ""},
		{"GET", "/v1/arp", ""},
		{"POST", "/v1/pods", `{"name":"x","ip":`},
		{"POST", "/v1/pods", `{"name":"x","ip":"` + e.CIDR(9) + `","evil":1}`},
		{"POST", "/v1/pods", `{"name":"` + strings.Repeat("x", 32<<10) + `"}`},
		{"POST", "/v1/pods", `{"name":"Bad_Name","ip":"` + e.CIDR(9) + `"}`},
	}

	pingc := make(chan podnet.PingResult, 1)
	pctx, stopPing := context.WithCancel(bg)
	go func() {
		r, _ := podnet.Ping(pctx, e.Netns("a"), e.IP(3), podnet.PingOptions{Count: 100000, Interval: 5 * time.Millisecond, Timeout: time.Second})
		pingc <- r
	}()
	time.Sleep(50 * time.Millisecond)
	const clients = 1000
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := make(map[int]int)
	var errs []error
	start := make(chan struct{})
	for i := 0; i < clients; i++ {
		rq := reqs[i%len(reqs)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, _ := http.NewRequest(rq.method, "http://tapswitch"+rq.path, strings.NewReader(rq.body))
			resp, err := hc.Do(r)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[resp.StatusCode]++
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	took := time.Since(t0)
	time.Sleep(50 * time.Millisecond)
	stopPing()
	pr := <-pingc
	t.Logf("%d concurrent requests in %v: status codes %v, %d errors; ping a -> b meanwhile: %s", clients, took.Round(time.Millisecond), codes, len(errs), pr)
	for _, err := range errs[:min(len(errs), 5)] {
		t.Errorf("request failed without an answer: %v", err)
	}
	if codes[200] != clients/2 || codes[400] != clients/2 {
		t.Errorf("status codes %v, want %d of 200 and of 400", codes, clients/2)
	}
	// The last request may still be in flight when the ping was stopped.
	if pr.Sent < 10 || pr.Received() < pr.Sent-1 {
		t.Errorf("the dataplane suffered under the control storm: %s", pr)
	}
	if pods := d.Pods(); len(pods) != 2 {
		t.Errorf("pods after the storm: %+v", pods)
	}
	e.MustPing(t, "b", 2, 3)
}
