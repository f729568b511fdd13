package bench

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// pdrSystem is a fake system under udp64pdr's search, 1 s per trial: it
// loses 0.5% of what it is sent up to knee datagrams/s and, above it,
// everything past the knee and 2% more. Its sender reaches unpaced
// datagrams/s unpaced and, paced, at most paced (0: as many as offered,
// up to unpaced).
type pdrSystem struct {
	knee, unpaced, paced float64
	tried                []float64
}

func (s *pdrSystem) send(pps float64) UDP {
	sent := math.Floor(pps)
	received := sent * 0.995
	if sent > s.knee {
		received = s.knee * 0.98
	}
	return UDP{Sent: int64(sent), Received: int64(received), Elapsed: time.Second}
}

func (s *pdrSystem) probe() UDP { return s.send(s.unpaced) }

func (s *pdrSystem) trial(pps float64) (UDP, error) {
	s.tried = append(s.tried, pps)
	sender := s.unpaced
	if s.paced > 0 {
		sender = s.paced
	}
	return s.send(min(pps, sender)), nil
}

// TestPDRSearch runs udp64pdr's search against fake systems with a known
// loss knee: it ends within 1/32 of the probe's send rate of what the
// system and the sender allow together, in pdrTrials trials that never
// offer more than the probe sent, with a result under PDRLoss.
func TestPDRSearch(t *testing.T) {
	for _, c := range []struct {
		name                 string
		knee, unpaced, paced float64
		want                 float64 // delivered, about
		trials               int
	}{
		{name: "knee low", knee: 100e3, unpaced: 1e6, want: 100e3, trials: pdrTrials},
		{name: "knee near the top", knee: 900e3, unpaced: 1e6, want: 900e3, trials: pdrTrials},
		{name: "knee at the probe's delivered rate", knee: 500e3, unpaced: 1e6, want: 500e3, trials: pdrTrials},
		// The paced sender saturates below the offered rate (and below
		// the knee): what it could offer passes, and is the answer.
		{name: "paced sender saturates", knee: 700e3, unpaced: 1e6, paced: 400e3, want: 400e3, trials: pdrTrials},
		// Unpaced, the sender cannot reach the knee: no search.
		{name: "sender below the knee", knee: 900e3, unpaced: 600e3, want: 600e3, trials: 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			sys := &pdrSystem{knee: c.knee, unpaced: c.unpaced, paced: c.paced}
			probe := sys.probe()
			got, err := pdrSearch(probe, sys.trial)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("rates tried %.0f; delivered %.0f/s at %.2f%% loss", sys.tried, got.DeliveredPPS(), got.LossPct())
			if len(sys.tried) != c.trials {
				t.Errorf("%d trials, want %d", len(sys.tried), c.trials)
			}
			for _, r := range sys.tried {
				if r <= 0 || r > probe.SentPPS() {
					t.Errorf("offered %.0f/s, outside (0, the probe's %.0f/s]", r, probe.SentPPS())
				}
			}
			if got.LossPct() >= PDRLoss {
				t.Errorf("result lost %.2f%%, not under %v%%", got.LossPct(), PDRLoss)
			}
			if tol := probe.SentPPS() / 32; math.Abs(got.DeliveredPPS()-c.want) > tol {
				t.Errorf("delivered %.0f/s, want %.0f within %.0f", got.DeliveredPPS(), c.want, tol)
			}
		})
	}
}

func TestPDRSearchErrors(t *testing.T) {
	never := func(float64) (UDP, error) {
		t.Error("a trial ran after a probe that moved nothing")
		return UDP{}, nil
	}
	for _, probe := range []UDP{{Elapsed: time.Second}, {Sent: 1000, Elapsed: time.Second}} {
		if _, err := pdrSearch(probe, never); err == nil || !strings.Contains(err.Error(), "unpaced probe") {
			t.Errorf("probe %+v: error %v, want the probe's", probe, err)
		}
	}
	lossy := UDP{Sent: 1e6, Received: 5e5, Elapsed: time.Second}

	// Every rate loses: a system that drops 10% whatever it is sent.
	var tried []float64
	_, err := pdrSearch(lossy, func(pps float64) (UDP, error) {
		tried = append(tried, pps)
		n := int64(pps)
		return UDP{Sent: n, Received: n * 9 / 10, Elapsed: time.Second}, nil
	})
	if err == nil || !strings.Contains(err.Error(), "at every rate tried") {
		t.Errorf("every rate loses: error %v", err)
	}
	if len(tried) != pdrTrials || tried[len(tried)-1] >= tried[0] {
		t.Errorf("every rate loses: rates tried %.0f, want %d going down", tried, pdrTrials)
	}

	// The sender writes nothing.
	if _, err := pdrSearch(lossy, func(float64) (UDP, error) { return UDP{Elapsed: time.Second}, nil }); err == nil || !strings.Contains(err.Error(), "wrote nothing") {
		t.Errorf("nothing sent: error %v", err)
	}

	// A trial fails: its error, as it is.
	boom := errors.New("boom")
	if _, err := pdrSearch(lossy, func(float64) (UDP, error) { return UDP{}, boom }); !errors.Is(err, boom) {
		t.Errorf("failing trial: error %v, want %v", err, boom)
	}
}

// TestPDRText: the udp64pdr strings follow PDRLoss, and at 1% read as they
// always have (reports compare by them).
func TestPDRText(t *testing.T) {
	cs, err := SelectCases([]string{"udp64pdr"})
	if err != nil {
		t.Fatal(err)
	}
	if PDRLoss == 1 {
		if want := "UDP 64-byte payload, highest rate with < 1% loss"; cs[0].Title != want {
			t.Errorf("title %q, want %q", cs[0].Title, want)
		}
		if want := "delivered at < 1% loss"; pdrMetric != want {
			t.Errorf("metric %q, want %q", pdrMetric, want)
		}
	}
}
