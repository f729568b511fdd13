package metrics

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/tapswitch/tapswitch/fdb"
	vswitch "github.com/tapswitch/tapswitch/switch"
	"github.com/tapswitch/tapswitch/switch/memport"
)

func frame(dst, src byte) []byte {
	f := make([]byte, 60)
	copy(f, []byte{2, 0, 0, 0, 0, dst})
	if dst == 0xff {
		copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	}
	copy(f[6:], []byte{2, 0, 0, 0, 0, src})
	f[12], f[13] = 0x08, 0x00
	return f
}

// scrape returns the exposition text of a switch that saw: a broadcast from
// p0 (flooded), a reply p1 -> p0 (known unicast), a runt on p1.
func scrape(t *testing.T) string {
	t.Helper()
	cfg := vswitch.DefaultConfig()
	clk := &vswitch.ManualClock{}
	clk.Set(1e9)
	cfg.Clock = clk
	sw, err := vswitch.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]fdb.PortID, 3)
	ins := make([]*vswitch.Ingress, 3)
	for i, name := range []string{"p0", "p1", "p2"} {
		if ids[i], err = sw.AddPort(memport.New(), vswitch.PortConfig{Name: name}); err != nil {
			t.Fatal(err)
		}
		ins[i], _ = sw.Ingress(ids[i])
	}
	ins[0].Receive([][]byte{frame(0xff, 1)})
	ins[1].Receive([][]byte{frame(1, 2), make([]byte, 5)})
	srv := httptest.NewServer(Handler(Registry(NewCollector(sw, Extra{Name: "x_total", Help: "x", Read: func() float64 { return 7 }}).
		WithDeviceDrops(func() map[string]uint64 { return map[string]uint64{"p0": 11} }))))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestScrapeReadsSwitchCounters(t *testing.T) {
	text := scrape(t)
	for _, want := range []string{
		`tapswitch_ports 3`,
		`tapswitch_port_rx_frames_total{port="p0"} 1`,
		`tapswitch_port_rx_bytes_total{port="p0"} 60`,
		`tapswitch_port_tx_frames_total{port="p1"} 1`,
		`tapswitch_port_tx_frames_total{port="p2"} 1`,
		`tapswitch_port_tx_frames_total{port="p0"} 1`,
		`tapswitch_port_rx_frames_total{port="p1"} 2`,
		`tapswitch_port_flooded_frames_total{port="p0"} 1`,
		`tapswitch_port_unknown_unicast_frames_total{port="p0"} 0`,
		`tapswitch_port_drops_total{port="p1",reason="runt"} 1`,
		`tapswitch_port_drops_total{port="p0",reason="arp-guard"} 0`,
		`tapswitch_port_fdb_entries{port="p0"} 1`,
		`tapswitch_port_device_drops_total{port="p0"} 11`,
		`tapswitch_fdb_entries 2`,
		`tapswitch_fdb_learned_total 2`,
		`tapswitch_fdb_moved_total 0`,
		`tapswitch_fdb_aged_total 0`,
		`tapswitch_fdb_refused_total 0`,
		`tapswitch_fdb_limit 8192`,
		`tapswitch_arp_suppressed_total 0`,
		`tapswitch_arp_guard_drops_total 0`,
		`tapswitch_x_total 7`,
		`go_goroutines`,
	} {
		if !strings.Contains(text, want+"\n") && !strings.Contains(text, want+" ") {
			t.Errorf("scrape lacks %q", want)
		}
	}
}

// TestMetricsDocumented keeps docs/metrics.md in step with the collector.
func TestMetricsDocumented(t *testing.T) {
	doc, err := readDoc()
	if err != nil {
		t.Skip(err)
	}
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^(tapswitch_[a-z_]+)`).FindAllStringSubmatch(scrape(t), -1) {
		name := m[1]
		if name == "tapswitch_x_total" || seen[name] {
			continue
		}
		seen[name] = true
		if !strings.Contains(doc, "`"+name+"`") {
			t.Errorf("docs/metrics.md does not document %s", name)
		}
	}
	if len(seen) < 20 {
		t.Errorf("only %d tapswitch metrics scraped", len(seen))
	}
}

func TestListenServesMetricsOnLoopback(t *testing.T) {
	sw, err := vswitch.New(vswitch.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	s, err := Listen("127.0.0.1:0", Registry(NewCollector(sw)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	resp, err := http.Get("http://" + s.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "tapswitch_ports 0") {
		t.Fatalf("GET /metrics: %s\n%.300s", resp.Status, b)
	}
	if _, err := Listen("127.0.0.1:nope", nil); err == nil {
		t.Error("Listen on a bad address succeeded")
	}
}
