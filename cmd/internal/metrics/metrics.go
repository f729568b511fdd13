// Package metrics exposes a switch's counters to Prometheus: a Collector
// that reads them at scrape time (the frame path is never touched), and an
// optional HTTP listener serving /metrics. docs/metrics.md names every
// metric.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	vswitch "github.com/tapswitch/tapswitch/switch"
)

// Namespace prefixes every metric name.
const Namespace = "tapswitch"

// Extra is a counter the daemon keeps outside the switch (events or capture
// frames dropped), read at scrape time like the rest.
type Extra struct {
	Name string // without the namespace, e.g. "monitor_events_dropped_total"
	Help string
	Read func() float64
}

// Collector reads a switch's port, FDB and ARP counters when scraped.
type Collector struct {
	sw       *vswitch.Switch
	extras   []extra
	devDrops func() map[string]uint64 // nil: no device counters

	portRxFrames, portRxBytes, portTxFrames, portTxBytes *prometheus.Desc
	portFlooded, portUnknown, portDrops, portFDB         *prometheus.Desc
	portDeviceDrops, ports                               *prometheus.Desc

	fdbEntries, fdbLimit, fdbCapacity                                           *prometheus.Desc
	fdbLearned, fdbMoved, fdbFlaps, fdbAged, fdbEvicted, fdbRefused, fdbFlushed *prometheus.Desc

	arpNeighbours, arpSnooped, arpSuppressed, arpGuardDrops, arpMalformed *prometheus.Desc
	ndpSnooped, ndpGuardDrops, raGuardDrops, ndpMalformed                 *prometheus.Desc
}

type extra struct {
	desc *prometheus.Desc
	read func() float64
}

// NewCollector describes sw's metrics. Extras are exported as counters.
func NewCollector(sw *vswitch.Switch, extras ...Extra) *Collector {
	name := func(s string) string { return prometheus.BuildFQName(Namespace, "", s) }
	port := func(s, help string) *prometheus.Desc {
		return prometheus.NewDesc(name(s), help, []string{"port"}, nil)
	}
	plain := func(s, help string) *prometheus.Desc { return prometheus.NewDesc(name(s), help, nil, nil) }
	c := &Collector{
		sw:           sw,
		portRxFrames: port("port_rx_frames_total", "Frames received from the port's device into the switch."),
		portRxBytes:  port("port_rx_bytes_total", "Bytes of Ethernet frames received from the port (virtio-net header not counted)."),
		portTxFrames: port("port_tx_frames_total", "Frames the switch wrote to the port's device."),
		portTxBytes:  port("port_tx_bytes_total", "Bytes of Ethernet frames written to the port (virtio-net header not counted)."),
		portFlooded:  port("port_flooded_frames_total", "Frames received on the port that were flooded to every other port of their VLAN (broadcast, multicast, unknown unicast)."),
		portUnknown:  port("port_unknown_unicast_frames_total", "The unknown-unicast part of tapswitch_port_flooded_frames_total."),
		portDrops: prometheus.NewDesc(name("port_drops_total"),
			"Frames received on (or, for tx-error, sent to) the port that the switch dropped, by reason.", []string{"port", "reason"}, nil),
		portFDB: port("port_fdb_entries", "FDB entries (learned, static and local) pointing at the port."),
		portDeviceDrops: port("port_device_drops_total", "Frames the port's TAP dropped before the switch read them (the TAP's tx_dropped): "+
			"its queue was full because the switch fell behind or rx_pps paused it, or lock_pod_mac's filter refused them. "+
			"The switch never saw these frames, so no tapswitch_port_drops_total reason counts them."),
		ports: plain("ports", "Ports attached to the switch."),

		fdbEntries:  plain("fdb_entries", "Entries in the forwarding table, static and local included."),
		fdbLimit:    plain("fdb_limit", "Learned entries the table may hold (fdb.limit)."),
		fdbCapacity: plain("fdb_capacity", "Slots the table has allocated."),
		fdbLearned:  plain("fdb_learned_total", "MACs inserted by learning."),
		fdbMoved:    plain("fdb_moved_total", "Learned MACs that moved to another port."),
		fdbFlaps:    plain("fdb_flaps_total", "Moves that made a MAC count as flapping (a loop or a spoofer)."),
		fdbAged:     plain("fdb_aged_total", "Learned entries removed by ageing."),
		fdbEvicted:  plain("fdb_evicted_total", "Entries evicted to make room under the evict-fair policy."),
		fdbRefused:  plain("fdb_refused_total", "MACs not learned because the table or the port was at its limit."),
		fdbFlushed:  plain("fdb_flushed_total", "Entries removed by flushes (a port removed, or an operator's flush)."),

		arpNeighbours: plain("arp_neighbours", "Neighbours in the table snooped from ARP and IPv6 neighbour discovery."),
		arpSnooped:    plain("arp_snooped_total", "ARP packets snooped into the neighbour table."),
		arpSuppressed: plain("arp_suppressed_total", "ARP requests the switch answered itself instead of flooding them (arp.suppress)."),
		arpGuardDrops: plain("arp_guard_drops_total", "ARP packets dropped by the guard: a sender IP not bound to the port, or a sender MAC not the frame's source."),
		arpMalformed:  plain("arp_malformed_total", "Frames of EtherType ARP whose body did not parse."),

		ndpSnooped:    plain("ndp_snooped_total", "IPv6 neighbour solicitations and advertisements snooped into the neighbour table."),
		ndpGuardDrops: plain("ndp_guard_drops_total", "IPv6 neighbour discovery dropped by the guard: an address not bound to the port, or a link-layer option not the frame's source."),
		raGuardDrops:  plain("ra_guard_drops_total", "IPv6 router advertisements and redirects from pods dropped (arp.pod_router_advertisements off)."),
		ndpMalformed:  plain("ndp_malformed_total", "IPv6 neighbour discovery no host would accept (bad checksum, hop limit, length or options), dropped."),
	}
	for _, e := range extras {
		c.extras = append(c.extras, extra{desc: plain(e.Name, e.Help), read: e.Read})
	}
	return c
}

func (c *Collector) descs() []*prometheus.Desc {
	d := []*prometheus.Desc{
		c.portRxFrames, c.portRxBytes, c.portTxFrames, c.portTxBytes, c.portFlooded, c.portUnknown, c.portDrops, c.portFDB, c.portDeviceDrops, c.ports,
		c.fdbEntries, c.fdbLimit, c.fdbCapacity, c.fdbLearned, c.fdbMoved, c.fdbFlaps, c.fdbAged, c.fdbEvicted, c.fdbRefused, c.fdbFlushed,
		c.arpNeighbours, c.arpSnooped, c.arpSuppressed, c.arpGuardDrops, c.arpMalformed,
		c.ndpSnooped, c.ndpGuardDrops, c.raGuardDrops, c.ndpMalformed,
	}
	for _, e := range c.extras {
		d = append(d, e.desc)
	}
	return d
}

// WithDeviceDrops has c export, per port, the drops fn reports for the
// port's device (by port name), read at each scrape.
func (c *Collector) WithDeviceDrops(fn func() map[string]uint64) *Collector {
	c.devDrops = fn
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs() {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one read of every counter,
// without stopping traffic.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	ports := c.sw.Ports()
	gauge(c.ports, len(ports))
	reasons := vswitch.DropReasons()
	for _, p := range ports {
		k := p.Counters
		counter(c.portRxFrames, k.RxFrames, p.Name)
		counter(c.portRxBytes, k.RxBytes, p.Name)
		counter(c.portTxFrames, k.TxFrames, p.Name)
		counter(c.portTxBytes, k.TxBytes, p.Name)
		counter(c.portFlooded, k.Flooded, p.Name)
		counter(c.portUnknown, k.Unknown, p.Name)
		for _, r := range reasons {
			counter(c.portDrops, k.Drops[r], p.Name, r.String())
		}
		gauge(c.portFDB, p.FDB, p.Name)
	}
	if c.devDrops != nil {
		for name, n := range c.devDrops() {
			counter(c.portDeviceDrops, n, name)
		}
	}
	f := c.sw.FDB().Stats()
	gauge(c.fdbEntries, f.Entries)
	gauge(c.fdbLimit, f.Limit)
	gauge(c.fdbCapacity, f.Capacity)
	counter(c.fdbLearned, f.Learned)
	counter(c.fdbMoved, f.Moved)
	counter(c.fdbFlaps, f.Flaps)
	counter(c.fdbAged, f.Aged)
	counter(c.fdbEvicted, f.Evicted)
	counter(c.fdbRefused, f.Refused)
	counter(c.fdbFlushed, f.Flushed)
	a := c.sw.ARP().Stats()
	gauge(c.arpNeighbours, a.Neighbours)
	counter(c.arpSnooped, a.Snooped)
	counter(c.arpSuppressed, a.Suppressed)
	counter(c.arpGuardDrops, a.GuardDrops)
	counter(c.arpMalformed, a.Malformed)
	counter(c.ndpSnooped, a.NDPSnooped)
	counter(c.ndpGuardDrops, a.NDPGuardDrops)
	counter(c.raGuardDrops, a.RAGuardDrops)
	counter(c.ndpMalformed, a.NDPMalformed)
	for _, e := range c.extras {
		ch <- prometheus.MustNewConstMetric(e.desc, prometheus.CounterValue, e.read())
	}
}

// Registry holds c and the Go runtime and process collectors.
func Registry(c *Collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves reg in the Prometheus text (or negotiated) format.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, MaxRequestsInFlight: 4, Timeout: 10 * time.Second})
}

// Server is the metrics listener.
type Server struct {
	ln   net.Listener
	srv  *http.Server
	done chan error
}

// Listen serves reg on addr (host:port, TCP) at /metrics.
func Listen(addr string, reg *prometheus.Registry) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics.listen %q: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", Handler(reg))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "tapswitch metrics are at /metrics", http.StatusNotFound)
	})
	s := &Server{ln: ln, done: make(chan error, 1), srv: &http.Server{
		Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second,
	}}
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	return s, nil
}

// Addr is the address the listener got (the port, when addr asked for 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the listener, letting a running scrape finish up to ctx.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}
