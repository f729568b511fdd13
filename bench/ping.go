package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/tapswitch/tapswitch/internal/podnet"
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

// PingRTT sends count echo requests, one every interval, from a raw ICMP
// socket in f.From's namespace to f.To and times the replies, waiting up to
// a second for the last one.
func PingRTT(ctx context.Context, f Flow, count int, interval time.Duration) (Ping, error) {
	r, err := podnet.Ping(ctx, f.From.NetNS, f.To.IP, podnet.PingOptions{Count: count, Interval: interval, Timeout: time.Second})
	res := Ping{Sent: r.Sent}
	for _, x := range r.Replies {
		res.RTTs = append(res.RTTs, x.RTT)
	}
	slices.Sort(res.RTTs)
	if err != nil {
		return res, err
	}
	if len(res.RTTs) == 0 {
		return res, fmt.Errorf("ping %s from %s: no reply to %d requests", f.To.IP, f.From.IP, count)
	}
	return res, nil
}
