package podnet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// PingOptions shape a run of echo requests. Zero values take the defaults.
type PingOptions struct {
	Count    int           // requests to send; default 3
	Interval time.Duration // between requests; default 200 ms
	Timeout  time.Duration // wait for the last reply; default 1 s
	// Payload is each request's data; nil sends 56 bytes, as ping(8).
	Payload []byte
	// TTL is the requests' TTL (IPv4) or hop limit (IPv6); 0 leaves the
	// system's default.
	TTL int
	// Linger waits the whole Timeout after the last request even when
	// every request is answered, so that late duplicates are counted.
	Linger bool
	// OnSend, when set, is called just before each request is written;
	// OnReply for each reply to a request of this run (dup: that request
	// was answered before), from another goroutine. They let a caller
	// follow a long run as it goes and must not block.
	OnSend  func(seq int)
	OnReply func(r Reply, dup bool)
}

// Reply is one answered request.
type Reply struct {
	Seq  int
	Sent time.Time
	RTT  time.Duration
	TTL  int // the reply's TTL or hop limit on arrival; -1 if unknown
}

// PingResult is what came back.
type PingResult struct {
	Dst        netip.Addr
	Sent       int
	Replies    []Reply // in arrival order, the first reply to each request
	Dups       int     // replies to requests answered before
	SendErrors int     // requests the kernel refused (ENETUNREACH and the like)
}

// Received is the number of distinct requests answered.
func (r PingResult) Received() int { return len(r.Replies) }

// Loss is the fraction of requests not answered.
func (r PingResult) Loss() float64 {
	if r.Sent == 0 {
		return 0
	}
	return float64(r.Sent-r.Received()) / float64(r.Sent)
}

// RTTs returns min, average and max round-trip time.
func (r PingResult) RTTs() (lo, avg, hi time.Duration) {
	if len(r.Replies) == 0 {
		return 0, 0, 0
	}
	lo = r.Replies[0].RTT
	var sum time.Duration
	for _, x := range r.Replies {
		lo, hi = min(lo, x.RTT), max(hi, x.RTT)
		sum += x.RTT
	}
	return lo, sum / time.Duration(len(r.Replies)), hi
}

// LongestGap is the longest time between two consecutive replies
// arriving: with a short Interval, how long the path was down. (Send times
// would understate it: requests sent while the path is down may be queued,
// by the neighbour layer or a qdisc, and answered late rather than lost.)
func (r PingResult) LongestGap() time.Duration {
	var gap time.Duration
	var prev time.Time
	for _, x := range r.Replies { // in arrival order
		at := x.Sent.Add(x.RTT)
		if !prev.IsZero() {
			gap = max(gap, at.Sub(prev))
		}
		prev = at
	}
	return gap
}

func (r PingResult) String() string {
	lo, avg, hi := r.RTTs()
	return fmt.Sprintf("%s: %d sent, %d received, %.0f%% loss, rtt min/avg/max %.3f/%.3f/%.3f ms",
		r.Dst, r.Sent, r.Received(), 100*r.Loss(), ms(lo), ms(avg), ms(hi))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Ping sends ICMP echo requests (ICMPv6 for an IPv6 dst) from inside netns
// ns (a name or a path) to dst and collects the replies. It returns an
// error only when it could not ping at all; a lost reply is in the result,
// not an error.
func Ping(ctx context.Context, ns string, dst netip.Addr, o PingOptions) (PingResult, error) {
	if o.Count <= 0 {
		o.Count = 3
	}
	if o.Interval <= 0 {
		o.Interval = 200 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.Payload == nil {
		o.Payload = make([]byte, 56)
		for i := range o.Payload {
			o.Payload[i] = byte(i)
		}
	}
	res := PingResult{Dst: dst}
	if !dst.IsValid() || dst.Is4In6() || dst.Zone() != "" {
		return res, fmt.Errorf("ping %s: want an IPv4 or IPv6 address without a zone", dst)
	}
	conn, err := listenICMP(ns, dst.Is6(), o.TTL)
	if err != nil {
		return res, fmt.Errorf("ping %s from netns %s: %w", dst, ns, err)
	}
	defer conn.Close()

	id := rand.IntN(0xffff) + 1
	peer := &net.IPAddr{IP: dst.AsSlice()}
	var mu sync.Mutex
	sent := make(map[int]time.Time, o.Count)
	got := make(map[int]bool, o.Count)
	done := make(chan error, 1)
	go func() { // receiver
		buf := make([]byte, 65536)
		for {
			m, ttl, from, at, err := conn.read(buf)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed) {
					err = nil
				}
				done <- err
				return
			}
			ipa, ok := from.(*net.IPAddr)
			if !ok || !ipa.IP.Equal(peer.IP) || m.Type != conn.reply {
				continue
			}
			e, ok := m.Body.(*icmp.Echo)
			if !ok || e.ID != id {
				continue
			}
			mu.Lock()
			t, ok := sent[e.Seq]
			if !ok {
				mu.Unlock()
				continue
			}
			r, dup := Reply{Seq: e.Seq, Sent: t, RTT: at.Sub(t), TTL: ttl}, got[e.Seq]
			if dup {
				res.Dups++
			} else {
				got[e.Seq] = true
				res.Replies = append(res.Replies, r)
			}
			all := len(got) == o.Count
			mu.Unlock()
			if o.OnReply != nil {
				o.OnReply(r, dup)
			}
			if all && !o.Linger {
				done <- nil
				return
			}
		}
	}()

	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
	var sendErr error
	for seq := 1; seq <= o.Count; seq++ {
		// The kernel fills in an ICMPv6 checksum on a raw ICMPv6 socket.
		msg := icmp.Message{Type: conn.echo, Body: &icmp.Echo{ID: id, Seq: seq, Data: o.Payload}}
		b, _ := msg.Marshal(nil)
		if o.OnSend != nil {
			o.OnSend(seq)
		}
		mu.Lock()
		sent[seq] = time.Now()
		res.Sent++
		mu.Unlock()
		if _, err := conn.WriteTo(b, peer); err != nil {
			// ENETUNREACH and the like: count it as lost, remember why.
			mu.Lock()
			res.SendErrors++
			mu.Unlock()
			if sendErr == nil {
				sendErr = err
			}
		}
		if seq == o.Count {
			break
		}
		select {
		case <-ctx.Done():
			conn.Close()
			<-done
			return res, ctx.Err()
		case <-tick.C:
		}
	}
	conn.SetReadDeadline(time.Now().Add(o.Timeout))
	var rerr error
	select {
	case rerr = <-done:
	case <-ctx.Done():
		conn.Close()
		<-done
		return res, ctx.Err()
	}
	mu.Lock()
	defer mu.Unlock()
	if rerr != nil {
		return res, fmt.Errorf("ping %s from netns %s: %w", dst, ns, rerr)
	}
	if len(res.Replies) == 0 && sendErr != nil {
		return res, fmt.Errorf("ping %s from netns %s: %w", dst, ns, sendErr)
	}
	return res, nil
}

// icmpConn is a raw ICMP or ICMPv6 socket that reads the TTL or hop limit
// of what it receives.
type icmpConn struct {
	*icmp.PacketConn
	proto       int // 1 or 58, for icmp.ParseMessage
	echo, reply icmp.Type
	v4          *ipv4.PacketConn
	v6          *ipv6.PacketConn
}

// listenICMP opens a raw socket inside netns ns: unprivileged ICMP sockets
// are off in a fresh namespace (net.ipv4.ping_group_range is "1 0").
func listenICMP(ns string, v6 bool, ttl int) (*icmpConn, error) {
	c := &icmpConn{proto: 1, echo: ipv4.ICMPTypeEcho, reply: ipv4.ICMPTypeEchoReply}
	network, local := "ip4:icmp", "0.0.0.0"
	if v6 {
		c.proto, c.echo, c.reply = 58, ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
		network, local = "ip6:ipv6-icmp", "::"
	}
	err := inNS(ns, func() (err error) {
		c.PacketConn, err = icmp.ListenPacket(network, local)
		return err
	})
	if err != nil {
		return nil, err
	}
	if v6 {
		c.v6 = c.IPv6PacketConn()
		err = c.v6.SetControlMessage(ipv6.FlagHopLimit, true)
		if err == nil && ttl > 0 {
			err = c.v6.SetHopLimit(ttl)
		}
	} else {
		c.v4 = c.IPv4PacketConn()
		err = c.v4.SetControlMessage(ipv4.FlagTTL, true)
		if err == nil && ttl > 0 {
			err = c.v4.SetTTL(ttl)
		}
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// read returns the next ICMP message, its TTL or hop limit (-1 when the
// kernel did not say), its source and when it arrived. A message that does
// not parse is skipped.
func (c *icmpConn) read(buf []byte) (m *icmp.Message, ttl int, from net.Addr, at time.Time, err error) {
	for {
		var n int
		ttl = -1
		if c.v6 != nil {
			var cm *ipv6.ControlMessage
			n, cm, from, err = c.v6.ReadFrom(buf)
			if cm != nil {
				ttl = cm.HopLimit
			}
		} else {
			var cm *ipv4.ControlMessage
			n, cm, from, err = c.v4.ReadFrom(buf)
			if cm != nil {
				ttl = cm.TTL
			}
		}
		if err != nil {
			return nil, 0, nil, time.Time{}, err
		}
		at = time.Now()
		if m, err = icmp.ParseMessage(c.proto, buf[:n]); err == nil {
			return m, ttl, from, at, nil
		}
	}
}
