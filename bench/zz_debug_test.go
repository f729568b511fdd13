package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestZZDebugFlood(t *testing.T) {
	ctx, _, _, ts := bothSystems(t, 2, 2*time.Minute)
	ps := ts.Pods()
	u, err := UDPFlood(ctx, Flow{ps[0], ps[1]}, 64, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("flood: sent %d recv %d loss %.2f%%", u.Sent, u.Received, u.LossPct())
	for _, p := range ps {
		out, _ := exec.Command("ip", "netns", "exec", filepath.Base(p.NetNS), "sh", "-c", "ip -s -s link show eth0; nstat -az | grep -iE 'udp|drop|Backlog' | grep -v ' 0  *0.0$'; cat /proc/net/softnet_stat").CombinedOutput()
		os.Stdout.Write(out)
	}
	out, _ := exec.Command("sh", "-c", "cat /proc/net/softnet_stat").CombinedOutput()
	os.Stdout.Write(out)
}
