package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/cmd/internal/nodetest"
)

func TestDemoRunsAndCleansUp(t *testing.T) {
	e := nodetest.New(t)
	prefix := strings.TrimSuffix(e.Prefix, "-")
	var out bytes.Buffer
	err := Run(context.Background(), Options{Out: &out, Subnet: e.Subnet.String(), Prefix: prefix, Size: 32 << 20})
	t.Log(out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"ping pod1 -> pod2", "3 sent, 3 received", "ping pod1 -> gateway", "matches", "rate: ",
		"master demo permanent", "lladdr", "RX-FRAMES",
		"-> broadcast ARP who-has " + e.IP(3).String() + " tell " + e.IP(2).String(),
		"flooded to 3 ports", "sent out pod1 only", "nothing of the demo is left",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if left := leftovers(prefix, prefix+"0"); len(left) > 0 {
		t.Errorf("left: %v", left)
	}
}

// TestDemoCleansUpWhenInterrupted cancels the demo in the middle of its
// transfer, as Ctrl-C does.
func TestDemoCleansUpWhenInterrupted(t *testing.T) {
	e := nodetest.New(t)
	prefix := strings.TrimSuffix(e.Prefix, "-")
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	go func() {
		for ctx.Err() == nil && !strings.Contains(out.String(), "==> TCP transfer") {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	err := Run(ctx, Options{Out: &out, Subnet: e.Subnet.String(), Prefix: prefix, Size: 64 << 30})
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("interrupted demo returned %v", err)
	}
	if left := leftovers(prefix, prefix+"0"); len(left) > 0 {
		t.Errorf("left: %v", left)
	}
}

func TestDemoRefusesASubnetInUse(t *testing.T) {
	e := nodetest.New(t)
	e.Start() // the test's daemon routes e.Subnet via its gateway
	err := Run(context.Background(), Options{Out: &bytes.Buffer{}, Subnet: e.Subnet.String(), Prefix: strings.TrimSuffix(e.Prefix, "-")})
	if err == nil || !strings.Contains(err.Error(), "pick another with --subnet") {
		t.Fatalf("demo on a used subnet: %v", err)
	}
}
