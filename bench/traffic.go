package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapswitch/tapswitch/internal/podnet"
)

// Flow is one direction of traffic between two pods.
type Flow struct{ From, To Pod }

// AllPairs is every ordered pair of distinct pods.
func AllPairs(pods []Pod) []Flow {
	var fs []Flow
	for _, a := range pods {
		for _, b := range pods {
			if a.IP != b.IP {
				fs = append(fs, Flow{a, b})
			}
		}
	}
	return fs
}

// listenIn listens on a free port of p's address inside p's namespace.
func listenIn(ctx context.Context, p Pod) (net.Listener, error) {
	return podnet.Listen(ctx, p.NetNS, "tcp4", net.JoinHostPort(p.IP.String(), "0"))
}

func dialIn(ctx context.Context, from Pod, network string, to netip.AddrPort) (net.Conn, error) {
	return podnet.Dial(ctx, from.NetNS, network, to.String())
}

// Throughput is bytes received over a measured window.
type Throughput struct {
	Bytes   int64
	Elapsed time.Duration
}

// Gbps is the rate in Gbit/s.
func (t Throughput) Gbps() float64 {
	if t.Elapsed <= 0 {
		return 0
	}
	return float64(t.Bytes) * 8 / t.Elapsed.Seconds() / 1e9
}

const tcpChunk = 256 << 10

// TCPThroughput runs one bulk TCP stream per flow, all at once: senders
// write 256 KiB buffers as fast as they can; receivers count bytes. The
// first warm of the run is not measured (slow start, ARP); then bytes
// received in the next dur are. during, when set, runs at the start and end
// of the measured window (CPU sampling).
func TCPThroughput(ctx context.Context, flows []Flow, warm, dur time.Duration, mark func(start bool)) (Throughput, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		received atomic.Int64
		wg       sync.WaitGroup
		errMu    sync.Mutex
		firstErr error
		stopping atomic.Bool
	)
	fail := func(err error) {
		if stopping.Load() {
			return
		}
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
		cancel()
	}
	var (
		lns      = make(map[netip.Addr]net.Listener) // one per destination pod
		conns    []net.Conn                          // dialled ends
		accMu    sync.Mutex
		accepted []net.Conn
	)
	defer func() {
		// Close waits for the goroutine inside the socket's Read or Write
		// to leave it, and with a thousand busy goroutines on two CPUs each
		// such wait is a turn of the whole run queue: closing pods32's 992
		// streams one after another took minutes. A deadline in the past
		// wakes every reader, writer and acceptor without waiting for any,
		// so they all leave within one turn; then Close waits for nobody.
		accMu.Lock()
		stopping.Store(true)
		accMu.Unlock()
		past := time.Unix(1, 0)
		for _, l := range lns {
			l.(*net.TCPListener).SetDeadline(past)
		}
		for _, c := range conns {
			c.SetDeadline(past)
		}
		// A receiver whose peer's FIN or RST was dropped would wait for
		// keepalive: wake the accepted ends too.
		accMu.Lock()
		for _, c := range accepted {
			c.SetDeadline(past)
		}
		accMu.Unlock()
		wg.Wait()
		for _, l := range lns {
			l.Close()
		}
		for _, c := range conns {
			c.Close()
		}
		for _, c := range accepted {
			c.Close()
		}
	}()
	for _, f := range flows {
		if _, ok := lns[f.To.IP]; ok {
			continue
		}
		l, err := listenIn(ctx, f.To)
		if err != nil {
			return Throughput{}, err
		}
		lns[f.To.IP] = l
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				accMu.Lock()
				if stopping.Load() {
					accMu.Unlock()
					c.Close()
					return
				}
				accepted = append(accepted, c)
				wg.Add(1)
				accMu.Unlock()
				go func() {
					defer wg.Done()
					buf := make([]byte, tcpChunk)
					for {
						n, err := c.Read(buf)
						received.Add(int64(n))
						if err != nil {
							return
						}
					}
				}()
			}
		}()
	}
	for _, f := range flows {
		to := lns[f.To.IP].Addr().(*net.TCPAddr).AddrPort()
		c, err := dialIn(ctx, f.From, "tcp4", to)
		if err != nil {
			return Throughput{}, err
		}
		conns = append(conns, c)
	}
	// The senders only read their buffer: one serves them all, which
	// spares pods32 a quarter GiB.
	sendBuf := make([]byte, tcpChunk)
	for i := range sendBuf {
		sendBuf[i] = byte(i)
	}
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, err := c.Write(sendBuf); err != nil {
					if !stopping.Load() {
						fail(fmt.Errorf("tcp send %s -> %s: %w", c.LocalAddr(), c.RemoteAddr(), err))
					}
					return
				}
			}
		}()
	}
	if err := sleepCtx(ctx, warm); err != nil {
		return Throughput{}, errors.Join(firstErr, err)
	}
	if mark != nil {
		mark(true)
	}
	b0, t0 := received.Load(), time.Now()
	if err := sleepCtx(ctx, dur); err != nil {
		return Throughput{}, errors.Join(firstErr, err)
	}
	b1, t1 := received.Load(), time.Now()
	if mark != nil {
		mark(false)
	}
	stopping.Store(true)
	errMu.Lock()
	err := firstErr
	errMu.Unlock()
	return Throughput{Bytes: b1 - b0, Elapsed: t1.Sub(t0)}, err
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// RR is a request/response result.
type RR struct {
	Transactions int
	Elapsed      time.Duration
	P50, P99     time.Duration
}

// TPS is transactions per second.
func (r RR) TPS() float64 { return float64(r.Transactions) / r.Elapsed.Seconds() }

// TCPRR is netperf's TCP_RR: one connection, a 1-byte request answered by
// a 1-byte response, one at a time, for dur after warm.
func TCPRR(ctx context.Context, f Flow, warm, dur time.Duration) (RR, error) {
	l, err := listenIn(ctx, f.To)
	if err != nil {
		return RR{}, err
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b := make([]byte, 1)
		for {
			if _, err := c.Read(b); err != nil {
				return
			}
			if _, err := c.Write(b); err != nil {
				return
			}
		}
	}()
	c, err := dialIn(ctx, f.From, "tcp4", l.Addr().(*net.TCPAddr).AddrPort())
	if err != nil {
		return RR{}, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	b := []byte{1}
	lat := make([]time.Duration, 0, 1<<16)
	start := time.Now()
	mstart := start.Add(warm)
	end := mstart.Add(dur)
	for {
		t0 := time.Now()
		if t0.After(end) {
			break
		}
		if _, err := c.Write(b); err != nil {
			return RR{}, fmt.Errorf("tcp_rr %s -> %s: %w", f.From.IP, f.To.IP, err)
		}
		if _, err := c.Read(b); err != nil {
			return RR{}, fmt.Errorf("tcp_rr %s -> %s: %w", f.From.IP, f.To.IP, err)
		}
		if t0.After(mstart) {
			lat = append(lat, time.Since(t0))
		}
	}
	if len(lat) == 0 {
		return RR{}, fmt.Errorf("tcp_rr %s -> %s: no transaction completed", f.From.IP, f.To.IP)
	}
	slices.Sort(lat)
	return RR{
		Transactions: len(lat), Elapsed: time.Since(mstart),
		P50: lat[len(lat)/2], P99: lat[len(lat)*99/100],
	}, nil
}
