package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/cmd/internal/capture"
	"github.com/tapswitch/tapswitch/cmd/internal/monitor"
	"github.com/tapswitch/tapswitch/cmd/internal/nodetest"
)

// events collects what GET /v1/events streams, in the background.
type events struct {
	mu  sync.Mutex
	got []monitor.Event
	end chan error
}

func watch(t *testing.T, e *nodetest.Env) (*events, context.CancelFunc) {
	ctx, cancel := context.WithCancel(bg)
	ev := &events{end: make(chan error, 1)}
	go func() {
		ev.end <- e.Client.Events(ctx, func(x monitor.Event) error {
			ev.mu.Lock()
			ev.got = append(ev.got, x)
			ev.mu.Unlock()
			return nil
		})
	}()
	time.Sleep(300 * time.Millisecond) // subscribed, and the port baseline taken
	return ev, cancel
}

// wait returns the first event matching ok, or fails after 3 s.
func (ev *events) wait(t *testing.T, what string, ok func(monitor.Event) bool) monitor.Event {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		ev.mu.Lock()
		for _, x := range ev.got {
			if ok(x) {
				ev.mu.Unlock()
				return x
			}
		}
		ev.mu.Unlock()
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	var lines []string
	for _, x := range ev.got {
		lines = append(lines, x.String())
	}
	t.Fatalf("no %s event; got:\n%s", what, strings.Join(lines, "\n"))
	return monitor.Event{}
}

// TestMonitorMetricsAndCapture: a monitor hears pods' MACs learned and
// ports added and removed; /metrics on loopback counts the pings; a
// capture on a pod's port holds the ICMP both ways, readable as pcap.
func TestMonitorMetricsAndCapture(t *testing.T) {
	e := nodetest.New(t)
	e.Cfg.Metrics.Listen = "127.0.0.1:0"
	d := e.Start()
	ev, stopWatch := watch(t, e)
	defer stopWatch()
	p1, p2 := e.AddQuietPod("p1", 2), e.AddQuietPod("p2", 3)

	t.Run("Monitor", func(t *testing.T) {
		ev.wait(t, "port p2 added", func(x monitor.Event) bool {
			return x.Type == monitor.PortAdded && x.Port == "p2" && x.Kind == api.KindPod
		})
		e.MustPing(t, "p1", 3, 2)
		for _, p := range []api.Pod{p1, p2} {
			m := nodetest.MAC(t, p)
			got := ev.wait(t, "learned "+p.MAC, func(x monitor.Event) bool {
				return x.Type == monitor.Learned && x.MAC != nil && *x.MAC == m
			})
			if got.Port != p.Name || got.VLAN != 1 {
				t.Errorf("learned %s: %q, want port %s vlan 1", p.MAC, got.String(), p.Name)
			}
		}
	})

	t.Run("Metrics", func(t *testing.T) {
		addr := d.MetricsAddr()
		if addr == nil || !strings.HasPrefix(addr.String(), "127.0.0.1:") {
			t.Fatalf("metrics address %v, want 127.0.0.1:port", addr)
		}
		resp, err := http.Get("http://" + addr.String() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		text := string(b)
		c := e.Ports(t)
		for _, want := range []string{
			`tapswitch_port_rx_frames_total{port="p1"} ` + itoa(c["p1"].Counters.RxFrames),
			`tapswitch_port_tx_frames_total{port="p2"} ` + itoa(c["p2"].Counters.TxFrames),
			`tapswitch_port_drops_total{port="p1",reason="arp-guard"} 0`,
			`tapswitch_fdb_learned_total `,
			`tapswitch_arp_guard_drops_total 0`,
			`tapswitch_monitor_events_dropped_total 0`,
			`tapswitch_capture_frames_dropped_total 0`,
		} {
			if !strings.Contains(text, want) {
				t.Errorf("/metrics lacks %q", want)
			}
		}
		if c["p1"].Counters.RxFrames < 3 {
			t.Errorf("p1 received %d frames, want at least 3 (ARP + 2 pings)", c["p1"].Counters.RxFrames)
		}
	})

	t.Run("Capture", func(t *testing.T) {
		var buf bytes.Buffer
		pw := pcapgo.NewWriterNanos(&buf)
		pw.WriteFileHeader(capture.Snaplen, layers.LinkTypeEthernet)
		done := make(chan error, 1)
		var res api.CaptureResult
		go func() {
			var err error
			res, err = e.Client.Capture(bg, api.CaptureSpec{Port: "p2", Count: 6, Duration: 10 * time.Second},
				func(ci gopacket.CaptureInfo, data []byte) error { return pw.WritePacket(ci, data) })
			done <- err
		}()
		time.Sleep(200 * time.Millisecond)
		// A second capture of the same port is refused while the first runs.
		_, err := e.Client.Capture(bg, api.CaptureSpec{Port: "p2", Count: 1}, func(gopacket.CaptureInfo, []byte) error { return nil })
		if !errors.Is(err, api.ErrConflict) {
			t.Errorf("second capture of p2: %v, want a conflict", err)
		}
		if _, err := e.Client.Capture(bg, api.CaptureSpec{Port: "nope", Count: 1}, func(gopacket.CaptureInfo, []byte) error { return nil }); !errors.Is(err, api.ErrNotFound) {
			t.Errorf("capture of an unknown port: %v, want not found", err)
		}
		e.MustPing(t, "p1", 3, 3)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if res.Frames != 6 || res.Dropped != 0 {
			t.Errorf("capture result %+v, want 6 frames, 0 dropped", res)
		}
		r, err := pcapgo.NewReader(&buf)
		if err != nil {
			t.Fatal(err)
		}
		var req, rep int
		for {
			data, _, err := r.ReadPacketData()
			if err != nil {
				break
			}
			pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
			ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			icmp, _ := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
			if ip == nil || icmp == nil {
				continue
			}
			switch icmp.TypeCode.Type() {
			case layers.ICMPv4TypeEchoRequest:
				if ip.DstIP.String() == e.IP(3).String() {
					req++
				}
			case layers.ICMPv4TypeEchoReply:
				if ip.SrcIP.String() == e.IP(3).String() {
					rep++
				}
			}
		}
		if req != 3 || rep != 3 {
			t.Errorf("pcap holds %d echo requests to p2 and %d replies from it, want 3 and 3", req, rep)
		}
	})

	t.Run("PortRemoved", func(t *testing.T) {
		if err := e.Client.DeletePod(bg, "p2"); err != nil {
			t.Fatal(err)
		}
		m := nodetest.MAC(t, p2)
		ev.wait(t, "flushed "+p2.MAC, func(x monitor.Event) bool {
			return x.Type == monitor.Flushed && x.MAC != nil && *x.MAC == m && x.Port == "p2"
		})
		ev.wait(t, "port p2 removed", func(x monitor.Event) bool { return x.Type == monitor.PortRemoved && x.Port == "p2" })
	})

	// The stream ends when the daemon's API closes, not after a timeout.
	t0 := time.Now()
	e.Stop(true)
	select {
	case err := <-ev.end:
		if err != nil {
			t.Errorf("event stream ended with %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Error("event stream still open 3 s after the daemon stopped")
	}
	if took := time.Since(t0); took > 3*time.Second {
		t.Errorf("stopping with an open event stream took %v", took)
	}
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }
