package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/tapswitch/tapswitch/tap"
)

// Ping is a run of ICMP echoes.
type Ping struct {
	Sent int
	RTTs []time.Duration // sorted, answered requests only
}

// Median RTT; 0 with no reply.
func (p Ping) Median() time.Duration {
	if len(p.RTTs) == 0 {
		return 0
	}
	return p.RTTs[len(p.RTTs)/2]
}

// PingRTT sends count echo requests, one at a time every interval, from a
// raw ICMP socket in f.From's namespace to f.To and times the replies.
func PingRTT(ctx context.Context, f Flow, count int, interval time.Duration) (Ping, error) {
	var conn *icmp.PacketConn
	err := tap.InNamespace(f.From.NetNS, func() (err error) {
		conn, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	})
	if err != nil {
		return Ping{}, fmt.Errorf("ping from %s: %w", f.From.NetNS, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	id := rand.IntN(0xfffe) + 1
	dst := &net.IPAddr{IP: f.To.IP.AsSlice()}
	buf := make([]byte, 1500)
	var res Ping
	for seq := 1; seq <= count; seq++ {
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: make([]byte, 56)}}
		b, _ := msg.Marshal(nil)
		t0 := time.Now()
		if _, err := conn.WriteTo(b, dst); err != nil {
			return res, fmt.Errorf("ping %s: %w", f.To.IP, err)
		}
		res.Sent++
		conn.SetReadDeadline(t0.Add(time.Second))
		for {
			n, from, err := conn.ReadFrom(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break // lost
			}
			if err != nil {
				if ctx.Err() != nil {
					return res, ctx.Err()
				}
				return res, fmt.Errorf("ping %s: %w", f.To.IP, err)
			}
			rtt := time.Since(t0)
			if a, ok := from.(*net.IPAddr); !ok || !a.IP.Equal(dst.IP) {
				continue
			}
			m, err := icmp.ParseMessage(1, buf[:n])
			if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
				continue
			}
			if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id && e.Seq == seq {
				res.RTTs = append(res.RTTs, rtt)
				break
			}
		}
		if err := sleepCtx(ctx, interval); err != nil {
			return res, err
		}
	}
	slices.Sort(res.RTTs)
	if len(res.RTTs) == 0 {
		return res, fmt.Errorf("ping %s from %s: no reply to %d requests", f.To.IP, f.From.IP, count)
	}
	return res, nil
}
