package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/internal/podnet"
)

// The UDP traffic engine. A sender that writes one datagram per system call
// cannot saturate the kernel bridge: through a bridge the sender's own call
// carries the datagram into the receiving socket, so the bridge delivers
// exactly what one thread can offer, and a partial drop rate measured that
// way is the sender's. The engine sends with sendmmsg(2), Batch datagrams
// per call, from Senders sockets per flow (a goroutine each), and receives
// with recvmmsg(2); a token bucket paces the batches. Every result says
// what was offered, so that a report can tell a system's limit from the
// sender's (UDP.SenderBound).

// UDPLoad is what the engine sends.
type UDPLoad struct {
	Size int // payload bytes per datagram
	// PPS is the offered rate over all flows and senders together, in
	// datagrams per second, split evenly among them; 0 sends unpaced.
	PPS float64
	// Batch is the most datagrams per sendmmsg(2) call; 1 (or 0) sends
	// one datagram per call, as iperf3 does.
	Batch int
	// Senders is how many sockets send each flow, each from its own
	// goroutine to its own receiving socket (0 or 1: one).
	Senders int
}

// UDP is a flood's outcome.
type UDP struct {
	Sent, Received int64
	Elapsed        time.Duration
	// Offered is the paced rate the sender was asked for, in datagrams
	// per second; 0 when it ran unpaced.
	Offered float64

	cpu *cpuMeter // the run's CPU time, when the case measured it
}

// SentPPS and DeliveredPPS are packets per second.
func (u UDP) SentPPS() float64      { return float64(u.Sent) / u.Elapsed.Seconds() }
func (u UDP) DeliveredPPS() float64 { return float64(u.Received) / u.Elapsed.Seconds() }

// LossPct is the share of sent datagrams that never arrived, in percent.
func (u UDP) LossPct() float64 {
	if u.Sent == 0 {
		return 0
	}
	return 100 * max(0, 1-float64(u.Received)/float64(u.Sent))
}

// SenderReach is the share of a paced rate a sender must send for the
// rate to count as offered: under it, the sender, not the system, set the
// rate.
const SenderReach = 0.97

// ReachedOffered says whether a paced sender sent at least SenderReach of
// its offered rate. An unpaced run has no offered rate and never reaches
// it.
func (u UDP) ReachedOffered() bool {
	return u.Offered > 0 && u.SentPPS() >= SenderReach*u.Offered
}

// MachineBoundShare is the share of the machine's CPU time that, once
// busy over a run, leaves no room for a faster sender: the senders, the
// system and the receivers together used the machine. Short of 1 because
// a machine whose threads hand frames to each other still idles a CPU now
// and then while one waits to be woken, and /proc/stat counts in ticks.
const MachineBoundShare = 0.9

// Busy is the share of the machine's CPU time, 0 to 1, that was busy
// during the run, and whether it was measured.
func (u UDP) Busy() (float64, bool) { return u.cpu.busy() }

// MachineBound says whether the machine's CPUs were full during the run
// (MachineBoundShare): then the rate is what the system and the traffic
// engine together get out of this machine, and no sender could offer more
// on it, whatever it reached.
func (u UDP) MachineBound() bool {
	b, ok := u.Busy()
	return ok && b >= MachineBoundShare
}

// SenderBound says whether the rate delivered without loss is the
// sender's limit rather than the system's: the sender ran unpaced and the
// system took what it got, or it was paced and fell short of the rate
// (ReachedOffered), while the machine had CPU to spare (not
// MachineBound). Then the system's own partial drop rate is at least this
// one, and a ratio against it means nothing.
func (u UDP) SenderBound() bool {
	return (u.Offered <= 0 || !u.ReachedOffered()) && !u.MachineBound()
}

// cpuMetrics are the machine's and the switch's CPU seconds per million
// datagrams delivered, where the run measured them.
func (u UDP) cpuMetrics() []Metric {
	m, mpkts := u.cpu, float64(u.Received)/1e6
	if m == nil || mpkts <= 0 {
		return nil
	}
	var out []Metric
	if m.machOK {
		out = append(out, Metric{Name: "machine CPU", Unit: "CPU-s/Mpkt", Value: (m.mach1 - m.mach0) / mpkts})
	}
	if m.procOK {
		out = append(out, Metric{Name: "switch CPU", Unit: "CPU-s/Mpkt", Value: (m.proc1 - m.proc0) / mpkts})
	}
	if b, ok := m.busy(); ok {
		out = append(out, Metric{Name: "machine busy", Unit: "%", Value: 100 * b})
	}
	return out
}

// udpWarm datagrams go out on each stream before the measured time, so
// that ARP has resolved when it starts; they are not counted.
const udpWarm = 3

// pacerTick is how often, at most, a paced sender that gets far less than
// a batch per tick wakes up to send what has accrued: a batch at high
// rates, a tick's worth (at least one datagram) at low ones.
const pacerTick = 100 * time.Microsecond

// pacer is a token bucket. Tokens accrue at rate from start, at most depth
// of them held (a millisecond's worth, or one chunk if more); each datagram
// sent takes one. It starts empty, so by any time t it has let out no more
// than rate*(t-start) datagrams, however it is polled.
type pacer struct {
	rate, depth, tokens float64
	chunk               float64 // tokens to wait for before the next send
	last                time.Time
}

func newPacer(rate float64, batch int, start time.Time) pacer {
	chunk := math.Max(1, math.Min(float64(max(batch, 1)), math.Floor(rate*pacerTick.Seconds())))
	return pacer{rate: rate, depth: math.Max(chunk, rate/1000), chunk: chunk, last: start}
}

// take returns how many datagrams may go at now, at most most, and takes
// their tokens.
func (p *pacer) take(now time.Time, most int) int {
	if now.After(p.last) {
		p.tokens = math.Min(p.depth, p.tokens+now.Sub(p.last).Seconds()*p.rate)
		p.last = now
	}
	n := min(most, int(p.tokens))
	p.tokens -= float64(n)
	return n
}

// wait is how long until a chunk of tokens has accrued.
func (p *pacer) wait() time.Duration {
	return time.Duration(max(0, (p.chunk-p.tokens)/p.rate*1e9))
}

// mmsghdr is struct mmsghdr of sendmmsg(2) and recvmmsg(2).
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// mmsgs builds n message headers of one buffer each.
func mmsgs(bufs [][]byte) []mmsghdr {
	ms := make([]mmsghdr, len(bufs))
	iovs := make([]unix.Iovec, len(bufs))
	for i, b := range bufs {
		iovs[i].Base = &b[0]
		iovs[i].SetLen(len(b))
		ms[i].hdr.Iov = &iovs[i]
		ms[i].hdr.SetIovlen(1)
	}
	return ms
}

// udpSender sends one stream's batches on a connected socket. Its method
// values are made once, so that a batch allocates nothing.
type udpSender struct {
	conn   syscall.RawConn
	msgs   []mmsghdr
	want   int   // datagrams in this call
	done   int   // sent by this call
	err    error // this call's error
	sendFn func(fd uintptr) bool
}

func (s *udpSender) send(fd uintptr) bool {
	for {
		n, e := sendmmsg(fd, s.msgs[:s.want])
		switch e {
		case 0:
			s.done = int(n)
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // the netpoller waits for room
		default:
			s.err = e
			return true
		}
	}
}

// batch sends up to n datagrams in one call and returns how many went.
func (s *udpSender) batch(n int) (int, error) {
	s.want, s.done, s.err = min(n, len(s.msgs)), 0, nil
	if err := s.conn.Write(s.sendFn); err != nil {
		return 0, err
	}
	return s.done, s.err
}

// udpReceiver counts the datagrams one socket receives, in batches.
type udpReceiver struct {
	conn   syscall.RawConn
	msgs   []mmsghdr
	got    atomic.Int64
	err    error
	recvFn func(fd uintptr) bool
}

func (r *udpReceiver) recv(fd uintptr) bool {
	for {
		n, e := recvmmsg(fd, r.msgs)
		switch e {
		case 0:
			r.got.Add(int64(n))
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // park until readable
		default:
			r.err = e
			return true
		}
	}
}

func (r *udpReceiver) run() {
	for {
		if err := r.conn.Read(r.recvFn); err != nil || r.err != nil {
			return // closed
		}
	}
}

// udpRecvBatch is how many datagrams a receiver takes per recvmmsg(2).
const udpRecvBatch = 64

// udpSockBuf is the engine's socket buffer size, receiving and sending.
const udpSockBuf = 4 << 20

// forceBuffer sets a socket's buffer to udpSockBuf past the sysctl cap
// (net.core.rmem_max, wmem_max: a few hundred KiB by default, a few
// milliseconds of small datagrams), as root may, so that a receiver the
// scheduler holds back for a moment loses nothing it would not lose on a
// tuned host; without the privilege, set (capped) as usual.
func forceBuffer(c syscall.RawConn, opt int, set func(int) error) {
	var serr error
	if err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, udpSockBuf) }); err != nil || serr != nil {
		set(udpSockBuf)
	}
}

// UDPSend runs l over flows for dur: Senders streams per flow, each a
// socket in the flow's source pod connected to a socket of its own in the
// destination pod, all starting at once. It returns what the senders sent
// and the receivers got in that time (a 100 ms drain after it ends counts
// what was still on the way). mark, when set, runs at the start and the
// end of the measured time (CPU sampling).
func UDPSend(ctx context.Context, flows []Flow, l UDPLoad, dur time.Duration, mark func(start bool)) (UDP, error) {
	if len(flows) == 0 || l.Size <= 0 {
		return UDP{}, fmt.Errorf("udp: %d flows of %d-byte datagrams: want at least one flow and one byte", len(flows), l.Size)
	}
	batch, senders := max(l.Batch, 1), max(l.Senders, 1)
	type stream struct {
		rx, tx *net.UDPConn
		r      *udpReceiver
		s      *udpSender
		sent   int64
		err    error
	}
	var (
		streams []*stream
		rwg     sync.WaitGroup
	)
	closeAll := func() {
		for _, st := range streams {
			st.rx.Close()
			if st.tx != nil {
				st.tx.Close()
			}
		}
		rwg.Wait()
	}
	defer closeAll()
	payload := make([]byte, l.Size)
	for i := range payload {
		payload[i] = byte(i)
	}
	for _, f := range flows {
		for range senders {
			pc, err := podnet.ListenPacket(ctx, f.To.NetNS, "udp4", net.JoinHostPort(f.To.IP.String(), "0"))
			if err != nil {
				return UDP{}, err
			}
			st := &stream{rx: pc.(*net.UDPConn)}
			streams = append(streams, st)
			rc, err := st.rx.SyscallConn()
			if err != nil {
				return UDP{}, err
			}
			forceBuffer(rc, unix.SO_RCVBUFFORCE, st.rx.SetReadBuffer)
			bufs := make([][]byte, udpRecvBatch)
			for i := range bufs {
				bufs[i] = make([]byte, 2048)
			}
			st.r = &udpReceiver{conn: rc, msgs: mmsgs(bufs)}
			st.r.recvFn = st.r.recv
			rwg.Add(1)
			go func() { defer rwg.Done(); st.r.run() }()
			c, err := dialIn(ctx, f.From, "udp4", st.rx.LocalAddr().(*net.UDPAddr).AddrPort())
			if err != nil {
				return UDP{}, err
			}
			st.tx = c.(*net.UDPConn)
			wc, err := st.tx.SyscallConn()
			if err != nil {
				return UDP{}, err
			}
			forceBuffer(wc, unix.SO_SNDBUFFORCE, st.tx.SetWriteBuffer)
			out := make([][]byte, batch)
			for i := range out {
				out[i] = payload // the kernel only reads it
			}
			st.s = &udpSender{conn: wc, msgs: mmsgs(out)}
			st.s.sendFn = st.s.send
		}
	}
	for _, st := range streams {
		for range udpWarm {
			st.tx.Write(payload)
		}
	}
	// Until the warm-up datagrams have arrived (or a second has gone by:
	// some were lost), so that none is counted as measured.
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if !slices.ContainsFunc(streams, func(st *stream) bool { return st.r.got.Load() < udpWarm }) {
			break
		}
	}
	base := make([]int64, len(streams))
	for i, st := range streams {
		base[i] = st.r.got.Load()
	}
	rate := l.PPS / float64(len(streams))
	if mark != nil {
		mark(true)
	}
	start := time.Now()
	end := start.Add(dur)
	var swg sync.WaitGroup
	for _, st := range streams {
		swg.Add(1)
		go func() {
			defer swg.Done()
			st.sent, st.err = sendUntil(ctx, st.s, batch, rate, start, end)
		}()
	}
	swg.Wait()
	elapsed := time.Since(start)
	if mark != nil {
		mark(false)
	}
	if err := ctx.Err(); err != nil {
		return UDP{}, err
	}
	time.Sleep(100 * time.Millisecond) // drain
	closeAll()
	u := UDP{Elapsed: elapsed, Offered: l.PPS}
	var errs []error
	for i, st := range streams {
		u.Sent += st.sent
		u.Received += st.r.got.Load() - base[i]
		if st.sent == 0 && st.err != nil {
			errs = append(errs, fmt.Errorf("udp send %s -> %s: %w", st.tx.LocalAddr(), st.tx.RemoteAddr(), st.err))
		}
	}
	return u, errors.Join(errs...)
}

// sendUntil sends batches on s until end: unpaced, full batches back to
// back; paced at rate (datagrams/s), what the pacer allows, sleeping in
// the kernel in between. It returns how many datagrams went, and the last
// error a call failed with.
func sendUntil(ctx context.Context, s *udpSender, batch int, rate float64, start, end time.Time) (int64, error) {
	var (
		sent    int64
		lastErr error
	)
	if rate <= 0 {
		for i := 0; ; i++ {
			if i&63 == 0 && ctx.Err() != nil {
				return sent, lastErr
			}
			if !time.Now().Before(end) {
				return sent, lastErr
			}
			n, err := s.batch(batch)
			sent += int64(n)
			if err != nil {
				lastErr = err
			}
		}
	}
	p := newPacer(rate, batch, start)
	for i := 0; ; i++ {
		now := time.Now()
		if !now.Before(end) || (i&63 == 0 && ctx.Err() != nil) {
			return sent, lastErr
		}
		// What accrued while this thread slept goes out now, a batch per
		// call: a sleep overshoots (timer slack, a busy CPU), and a
		// sender that took one batch per wake-up would fall behind its
		// rate for good. The bucket's depth bounds the burst. A call that
		// sends fewer than it was given leaves the rest's tokens spent:
		// the sender fell short, which Sent shows.
		for n := p.take(now, int(p.depth)); n > 0; {
			k := min(n, batch)
			got, err := s.batch(k)
			sent += int64(got)
			n -= k
			if err != nil {
				lastErr = err
				break
			}
		}
		// Sleep in the kernel, not in a Go timer: the runtime rounds a
		// timer it waits for in epoll up to a millisecond.
		ts := unix.NsecToTimespec(max(int64(p.wait()), int64(20*time.Microsecond)))
		unix.Nanosleep(&ts, nil)
	}
}

// UDPFlood sends datagrams with size-byte payloads from one socket as fast
// as one goroutine writes them, one datagram per call as iperf3 does, for
// dur, and counts what a receiver reading in batches gets.
func UDPFlood(ctx context.Context, f Flow, size int, dur time.Duration) (UDP, error) {
	return UDPPaced(ctx, f, size, 0, dur)
}

// UDPPaced is UDPFlood with the sender held to pps datagrams per second (0:
// unpaced) by the engine's token bucket. Sent says what the sender managed,
// which a starved sender keeps under pps.
func UDPPaced(ctx context.Context, f Flow, size int, pps float64, dur time.Duration) (UDP, error) {
	return UDPSend(ctx, []Flow{f}, UDPLoad{Size: size, PPS: pps, Batch: 1}, dur, nil)
}
