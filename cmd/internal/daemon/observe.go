package daemon

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/cmd/internal/capture"
	"github.com/tapswitch/tapswitch/cmd/internal/metrics"
	vswitch "github.com/tapswitch/tapswitch/switch"
	"github.com/tapswitch/tapswitch/tap"
)

// observers are the daemon's ways of seeing inside: the event feed, the
// metrics listener and the captures running.
type observers struct {
	events  *eventFeed
	metrics *metrics.Server

	// capDropped sums the frames captures could not keep up with.
	capDropped atomic.Uint64
}

// startObservers starts the event feed and, when configured, the metrics
// listener.
func (d *Daemon) startObservers() error {
	d.events = newEventFeed(d)
	if d.cfg.Metrics.Listen == "" {
		return nil
	}
	c := metrics.NewCollector(d.sw,
		metrics.Extra{Name: "monitor_events_dropped_total", Help: "Events that `tapswitch monitor` readers lost because they fell behind.",
			Read: func() float64 { return float64(d.events.hub.Dropped() + d.events.sub.Dropped()) }},
		metrics.Extra{Name: "capture_frames_dropped_total", Help: "Frames `tapswitch capture` could not keep because its writer fell behind.",
			Read: func() float64 { return float64(d.capDropped.Load()) }},
	).WithDeviceDrops(d.DeviceDrops)
	srv, err := metrics.Listen(d.cfg.Metrics.Listen, metrics.Registry(c))
	if err != nil {
		d.events.Close()
		return err
	}
	d.metrics = srv
	d.log.Info("metrics listening", zap.Stringer("address", srv.Addr()))
	return nil
}

// stopObservers ends the event streams and the metrics listener. It does
// not take d.mu (the event feed does, and is waited for).
func (d *Daemon) stopObservers() {
	if d.events != nil {
		d.events.Close()
	}
	if d.metrics != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		d.metrics.Close(ctx)
		cancel()
		d.metrics = nil
	}
}

// MetricsAddr is where the metrics listener listens, or nil.
func (d *Daemon) MetricsAddr() net.Addr {
	if d.metrics == nil {
		return nil
	}
	return d.metrics.Addr()
}

// Capture mirrors port spec.Port into a pcap stream on w (GET
// /v1/capture). The port's frames are copied only while it runs; a port
// without a capture costs the switch one atomic load per batch.
func (d *Daemon) Capture(ctx context.Context, spec api.CaptureSpec, w io.Writer, flush func()) (api.CaptureResult, error) {
	id, ok := d.sw.PortByName(spec.Port)
	if !ok {
		return api.CaptureResult{}, notFound("capture: port %q: no such port (see `tapswitch ports`)", spec.Port)
	}
	c := capture.New(d.sw.HeaderLen(), spec.Count)
	if err := d.sw.SetMirror(id, c); err != nil {
		if errors.Is(err, vswitch.ErrMirrored) {
			return api.CaptureResult{}, conflict("capture: port %q: another capture is running on it", spec.Port)
		}
		return api.CaptureResult{}, notFound("capture: port %q: %v", spec.Port, err)
	}
	defer d.sw.ClearMirror(id, c)
	d.log.Info("capture started", zap.String("port", spec.Port), zap.Int("count", spec.Count), zap.Duration("duration", spec.Duration))
	res, err := c.Stream(ctx, w, capture.Options{
		Duration: spec.Duration,
		Flush:    flush,
		Alive: func() bool {
			cur, ok := d.sw.PortByName(spec.Port)
			return ok && cur == id
		},
	})
	d.capDropped.Add(res.Dropped)
	d.log.Info("capture ended", zap.String("port", spec.Port), zap.Int("frames", res.Frames), zap.Uint64("dropped", res.Dropped))
	return api.CaptureResult{Frames: res.Frames, Dropped: res.Dropped}, err
}

// DeviceDrops is, per port name, the frames the port's TAP dropped before
// the switch read them (tap.Device.Dropped), for the pods and the gateway
// that are up. A device that cannot be read (gone meanwhile) is left out.
func (d *Daemon) DeviceDrops() map[string]uint64 {
	d.mu.Lock()
	devs := map[string]*tap.Device{}
	for name, p := range d.pods {
		if p.link != nil {
			devs[name] = p.link.dev
		}
	}
	if d.gw != nil && d.gw.link != nil && d.gw.gone == "" {
		devs[d.gw.name] = d.gw.link.dev
	}
	d.mu.Unlock()
	out := make(map[string]uint64, len(devs))
	for name, dev := range devs {
		if n, err := dev.Dropped(); err == nil {
			out[name] = n
		}
	}
	return out
}
