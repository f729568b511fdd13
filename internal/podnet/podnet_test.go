package podnet

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestPingResultGapLossAndRTT(t *testing.T) {
	t0 := time.Unix(0, 0)
	ms := time.Millisecond
	r := PingResult{Dst: netip.MustParseAddr("10.0.0.2"), Sent: 5, Replies: []Reply{
		{Seq: 1, Sent: t0, RTT: 1 * ms},
		{Seq: 2, Sent: t0.Add(10 * ms), RTT: 1 * ms},
		// 3 lost; 4 answered late, after the path came back
		{Seq: 4, Sent: t0.Add(30 * ms), RTT: 50 * ms},
		{Seq: 5, Sent: t0.Add(40 * ms), RTT: 41 * ms},
	}}
	if got := r.LongestGap(); got != 69*ms {
		t.Errorf("gap %v, want 69ms (reply at 11ms, next at 80ms)", got)
	}
	if r.Loss() != 0.2 {
		t.Errorf("loss %v", r.Loss())
	}
	lo, avg, hi := r.RTTs()
	if lo != ms || hi != 50*ms || avg != 93*ms/4 {
		t.Errorf("rtt %v %v %v", lo, avg, hi)
	}
	if !strings.Contains(r.String(), "5 sent, 4 received, 20% loss") {
		t.Errorf("%s", r)
	}
}

func TestTransferResultRate(t *testing.T) {
	r := TransferResult{Bytes: 125_000_000, Duration: time.Second}
	if r.Rate() != 1e9 || FormatRate(r.Rate()) != "1.00 Gbit/s" || FormatRate(5e8) != "500.0 Mbit/s" {
		t.Errorf("%v %s", r.Rate(), FormatRate(r.Rate()))
	}
}
