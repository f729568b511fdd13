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

	"github.com/tapswitch/tapswitch/tap"
)

// PingOptions shape a run of echo requests. Zero values take the defaults.
type PingOptions struct {
	Count    int           // requests to send; default 3
	Interval time.Duration // between requests; default 200 ms
	Timeout  time.Duration // wait for the last reply; default 1 s
	Size     int           // payload bytes; default 56, as ping(8)
}

// Reply is one answered request.
type Reply struct {
	Seq  int
	Sent time.Time
	RTT  time.Duration
}

// PingResult is what came back.
type PingResult struct {
	Dst     netip.Addr
	Sent    int
	Replies []Reply // in arrival order
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
// ns (a name or a path) to dst and collects the replies. It returns an error only when it could not
// ping at all; a lost reply is in the result, not an error.
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
	if o.Size <= 0 {
		o.Size = 56
	}
	res := PingResult{Dst: dst}
	if !dst.IsValid() || dst.Is4In6() || dst.Zone() != "" {
		return res, fmt.Errorf("ping %s: want an IPv4 or IPv6 address without a zone", dst)
	}
	// ICMP or ICMPv6: the protocol number, the echo types, the raw socket.
	proto, echo, reply, network, local := 1, icmp.Type(ipv4.ICMPTypeEcho), icmp.Type(ipv4.ICMPTypeEchoReply), "ip4:icmp", "0.0.0.0"
	if dst.Is6() {
		proto, echo, reply, network, local = 58, ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply, "ip6:ipv6-icmp", "::"
	}
	var conn *icmp.PacketConn
	err := tap.InNamespace(nsPath(ns), func() error {
		// A raw socket: unprivileged ICMP sockets are off in a fresh
		// namespace (net.ipv4.ping_group_range is "1 0").
		c, err := icmp.ListenPacket(network, local)
		conn = c
		return err
	})
	if err != nil {
		return res, fmt.Errorf("ping %s from netns %s: %w", dst, ns, err)
	}
	defer conn.Close()

	id := rand.IntN(0xffff) + 1
	payload := make([]byte, o.Size)
	for i := range payload {
		payload[i] = byte(i)
	}
	peer := &net.IPAddr{IP: dst.AsSlice()}

	var mu sync.Mutex
	sent := make(map[int]time.Time, o.Count)
	got := make(map[int]bool, o.Count)
	done := make(chan error, 1)
	go func() { // receiver
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed) {
					err = nil
				}
				done <- err
				return
			}
			now := time.Now()
			ipa, ok := from.(*net.IPAddr)
			if !ok || !ipa.IP.Equal(peer.IP) {
				continue
			}
			m, err := icmp.ParseMessage(proto, buf[:n])
			if err != nil || m.Type != reply {
				continue
			}
			e, ok := m.Body.(*icmp.Echo)
			if !ok || e.ID != id {
				continue
			}
			mu.Lock()
			if t, ok := sent[e.Seq]; ok && !got[e.Seq] {
				got[e.Seq] = true
				res.Replies = append(res.Replies, Reply{Seq: e.Seq, Sent: t, RTT: now.Sub(t)})
			}
			all := len(got) == o.Count
			mu.Unlock()
			if all {
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
		msg := icmp.Message{Type: echo, Body: &icmp.Echo{ID: id, Seq: seq, Data: payload}}
		b, _ := msg.Marshal(nil)
		mu.Lock()
		sent[seq] = time.Now()
		mu.Unlock()
		res.Sent++
		if _, err := conn.WriteTo(b, peer); err != nil && sendErr == nil {
			// ENETUNREACH and the like: count it as lost, remember why.
			sendErr = err
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
