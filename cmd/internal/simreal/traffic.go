package simreal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/fdb"
	"github.com/tapswitch/tapswitch/internal/podnet"
	"github.com/tapswitch/tapswitch/netns"
	"github.com/tapswitch/tapswitch/sim"
)

type simHost = sim.HostSpec

const (
	rx = 0
	tx = 1
)

// observer watches one host's eth0 from inside its namespace with a packet
// socket: every frame the host receives (rx) and sends (tx), by the types
// of the frames check. What the host receives is what its switch port
// sent, and the other way round (nothing is lost on a TAP by design; what
// its queue or lock_pod_mac's kernel filter drops shows in the port's
// counters, not here). It also writes the port's pcap when asked.
type observer struct {
	fd int

	mu      sync.Mutex
	typed   [2][sim.NumFrameTypes]uint64
	echoRx  map[netip.Addr]bool // sources of echo requests it received
	echoTx  map[netip.Addr]bool // destinations of echo replies it sent
	arpRx   map[netip.Addr]int  // ARP replies it received, by sender address
	pcap    *pcapgo.Writer
	pcapF   *os.File
	done    chan struct{}
	lastErr error
}

func openObserver(ns, pcapPath string) (*observer, error) {
	o := &observer{fd: -1, echoRx: map[netip.Addr]bool{}, echoTx: map[netip.Addr]bool{}, arpRx: map[netip.Addr]int{}, done: make(chan struct{})}
	err := netns.FromPath(netns.PathOf(ns)).Run(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		o.fd = fd
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
		tv := unix.Timeval{Usec: 100_000}
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})

	if err != nil {
		if o.fd >= 0 {
			unix.Close(o.fd)
		}
		return nil, fmt.Errorf("netns %s: %w", ns, err)
	}
	if pcapPath != "" {
		f, err := os.Create(pcapPath)
		if err != nil {
			unix.Close(o.fd)
			return nil, fmt.Errorf("pcap: %w", err)
		}
		o.pcapF, o.pcap = f, pcapgo.NewWriterNanos(f)
		if err := o.pcap.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
			f.Close()
			unix.Close(o.fd)
			return nil, fmt.Errorf("pcap: %w", err)
		}
	}
	go o.read()
	return o, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (o *observer) read() {
	defer close(o.done)
	buf := make([]byte, 65536)
	for {
		n, from, err := unix.Recvfrom(o.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return // closed
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok {
			continue
		}
		dir := rx
		if ll.Pkttype == unix.PACKET_OUTGOING {
			dir = tx
		}
		o.add(dir, buf[:n], time.Now())
	}
}

func (o *observer) add(dir int, f []byte, at time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	sim.CountFrame(&o.typed[dir], f)
	if len(f) >= 14+20+8 && binary.BigEndian.Uint16(f[12:]) == 0x0800 && f[14+9] == 1 {
		ihl := int(f[14]&0x0f) * 4
		if len(f) >= 14+ihl+1 {
			src, _ := netip.AddrFromSlice(f[14+12 : 14+16])
			dst, _ := netip.AddrFromSlice(f[14+16 : 14+20])
			switch t := f[14+ihl]; {
			case t == 8 && dir == rx:
				o.echoRx[src] = true
			case t == 0 && dir == tx:
				o.echoTx[dst] = true
			}
		}
	}
	if dir == rx && len(f) >= 14+28 && binary.BigEndian.Uint16(f[12:]) == 0x0806 && binary.BigEndian.Uint16(f[14+6:]) == 2 {
		spa, _ := netip.AddrFromSlice(f[14+14 : 14+18])
		o.arpRx[spa]++
	}
	if o.pcap != nil && o.lastErr == nil {
		o.lastErr = o.pcap.WritePacket(capInfo(at, len(f)), f)
	}
}

func (o *observer) counts() [2][sim.NumFrameTypes]uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.typed
}

func (o *observer) answered(ip netip.Addr) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.echoRx[ip] && o.echoTx[ip]
}

func (o *observer) arpReplies(from netip.Addr) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.arpRx[from]
}

func (o *observer) close() error {
	unix.Shutdown(o.fd, unix.SHUT_RDWR)
	unix.Close(o.fd)
	<-o.done
	if o.pcapF != nil {
		err := o.pcapF.Close()
		return errors.Join(o.lastErr, err)
	}
	return nil
}

// arpFrame is an Ethernet/IPv4 ARP frame, as the simulator builds it.
func arpFrame(dst, src fdb.MAC, op uint16, sha fdb.MAC, spa netip.Addr, tha fdb.MAC, tpa netip.Addr) []byte {
	b := make([]byte, 14+28)
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	binary.BigEndian.PutUint16(b[12:], 0x0806)
	a := b[14:]
	binary.BigEndian.PutUint16(a[0:], 1)
	binary.BigEndian.PutUint16(a[2:], 0x0800)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:], op)
	copy(a[8:14], sha[:])
	s4, t4 := spa.As4(), tpa.As4()
	copy(a[14:18], s4[:])
	copy(a[18:24], tha[:])
	copy(a[24:28], t4[:])
	return b
}

var broadcast = fdb.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// pinger is one ping action's state, read while it runs.
type pinger struct {
	spec     *sim.Ping
	mu       sync.Mutex
	sent     int
	dups     int
	errors   int
	rttSum   time.Duration
	rttMin   time.Duration
	rttMax   time.Duration
	ttl      int
	received int
}

// run sends the pings from namespace ns and collects the replies until a
// second after the last request.
func (p *pinger) run(ctx context.Context, ns string, dst netip.Addr) error {
	payload := make([]byte, p.spec.Size)
	for i := range payload {
		payload[i] = byte(i)
	}
	o := podnet.PingOptions{
		Count: p.spec.Count, Interval: p.spec.Interval, Timeout: settle,
		Payload: payload, TTL: p.spec.TTL, Linger: true,
		OnSend: func(int) {
			p.mu.Lock()
			p.sent++
			p.mu.Unlock()
		},
		OnReply: func(r podnet.Reply, dup bool) {
			p.mu.Lock()
			defer p.mu.Unlock()
			if dup {
				p.dups++
				return
			}
			p.received++
			p.rttSum += r.RTT
			if p.received == 1 || r.RTT < p.rttMin {
				p.rttMin = r.RTT
			}
			p.rttMax = max(p.rttMax, r.RTT)
			if r.TTL >= 0 {
				p.ttl = r.TTL
			}
		},
	}
	res, err := podnet.Ping(ctx, ns, dst, o)
	p.mu.Lock()
	p.errors = res.SendErrors
	p.mu.Unlock()
	// A cancelled run, or requests the kernel refused, are in the counts;
	// only a ping that could not start is an error.
	if err != nil && res.Sent == 0 && ctx.Err() == nil {
		return fmt.Errorf("ping %s: %w", p.spec.Name, err)
	}
	return nil
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// flower is one UDP flow's state: each datagram carries the flow's number
// and its sequence number, so the receiver counts each once.
type flower struct {
	spec    *sim.Flow
	idx     uint32
	mu      sync.Mutex
	sent    int
	seen    []bool
	got     int
	dups    int
	cancel  context.CancelFunc // stops it (stop_flow)
	stopped bool
}

// stop ends the flow: now if it runs, at once if it has not started.
func (f *flower) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = true
	if f.cancel != nil {
		f.cancel()
	}
}

func (f *flower) receive(seq uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if int(seq) >= len(f.seen) {
		if f.spec.Count > 0 || seq > 1<<28 {
			return
		}
		f.seen = append(f.seen, make([]bool, int(seq)+1-len(f.seen))...)
	}
	if f.seen[seq] {
		f.dups++
		return
	}
	f.seen[seq] = true
	f.got++
}

// arpinger is one arping action: ARP requests for an address, sent from a
// packet socket whether or not the host has it cached, and the replies
// from that address that came back meanwhile.
type arpinger struct {
	spec    *sim.Arping
	mu      sync.Mutex
	sent    int
	started bool
	ob      *observer
	target  netip.Addr
	base    int
}

// counts are the requests sent and the replies so far.
func (a *arpinger) counts() (sent, replies int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.started {
		return 0, 0
	}
	return a.sent, a.ob.arpReplies(a.target) - a.base
}

func (a *arpinger) run(ctx context.Context, w *podnet.FrameWriter, ob *observer, mac fdb.MAC, ip, target netip.Addr) error {
	a.mu.Lock()
	a.started, a.ob, a.target, a.base = true, ob, target, ob.arpReplies(target)
	a.mu.Unlock()
	f := arpFrame(broadcast, mac, 1, mac, ip, fdb.MAC{}, target)
	start := time.Now()
	for i := 0; i < a.spec.Count; i++ {
		if !sleepUntil(ctx, start.Add(time.Duration(i)*a.spec.Interval)) {
			break
		}
		if err := w.Write(f); err != nil {
			return err
		}
		a.mu.Lock()
		a.sent++
		a.mu.Unlock()
	}
	return nil
}

// sinks are the UDP receivers, one per (namespace, address, port), shared
// by the flows that go there.
type sink struct {
	conn *net.UDPConn
	done chan struct{}
}

func openSink(ns string, addr netip.AddrPort, flows []*flower) (*sink, error) {
	pc, err := podnet.ListenPacket(context.Background(), ns, "udp4", addr.String())
	if err != nil {
		return nil, fmt.Errorf("udp sink: %w", err)
	}
	c := pc.(*net.UDPConn)
	c.SetReadBuffer(8 << 20)
	s := &sink{conn: c, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		buf := make([]byte, 65536)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			if n < 8 {
				continue
			}
			fi, seq := binary.BigEndian.Uint32(buf), binary.BigEndian.Uint32(buf[4:])
			if int(fi) < len(flows) && flows[fi] != nil {
				flows[fi].receive(seq)
			}
		}
	}()
	return s, nil
}

func (s *sink) close() {
	s.conn.Close()
	<-s.done
}

// run sends the flow's datagrams from ns at its rate.
func (f *flower) run(ctx context.Context, ns string, dst netip.AddrPort) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f.mu.Lock()
	f.cancel = cancel
	stopped := f.stopped
	f.mu.Unlock()
	if stopped {
		return nil
	}
	c, err := podnet.Dial(ctx, ns, "udp4", dst.String())
	if err != nil {
		return fmt.Errorf("flow %s: %w", f.spec.Name, err)
	}
	defer c.Close()
	b := make([]byte, f.spec.Size)
	for i := 8; i < len(b); i++ {
		b[i] = byte(i)
	}
	binary.BigEndian.PutUint32(b, f.idx)
	start := time.Now()
	for i := 0; f.spec.Count == 0 || i < f.spec.Count; i++ {
		if !sleepUntil(ctx, start.Add(time.Duration(float64(i)/f.spec.Rate*float64(time.Second)))) {
			break
		}
		binary.BigEndian.PutUint32(b[4:], uint32(i))
		for {
			_, err := c.Write(b)
			if errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EAGAIN) {
				time.Sleep(100 * time.Microsecond)
				continue
			}
			// ECONNREFUSED and the like: an ICMP error for an earlier
			// datagram; this one was sent.
			break
		}
		f.mu.Lock()
		f.sent++
		f.mu.Unlock()
	}
	return nil
}

// pcapPath is where a host's port capture goes: named as the simulator's
// --pcap-per-port names a switch port's file.
func pcapPath(dir, sw, port string) string {
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, sim.SafeName(sw+"_"+port))
}

func capInfo(at time.Time, n int) gopacket.CaptureInfo {
	return gopacket.CaptureInfo{Timestamp: at, CaptureLength: n, Length: n}
}
