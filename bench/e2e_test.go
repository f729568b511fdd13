package bench

import (
	"context"
	"crypto/sha256"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/internal/testenv"
)

// buildTapswitch compiles the tapswitch binary for the test, which runs the
// daemon as a child process as the node does.
func buildTapswitch(t *testing.T) string {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "tapswitch")
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(goBin, "build", "-o", exe, "github.com/tapswitch/tapswitch/cmd/tapswitch").CombinedOutput()
	if err != nil {
		t.Fatalf("go build tapswitch: %v\n%s", err, out)
	}
	return exe
}

// sendIntact sends size bytes of a counting pattern over TCP from f.From to
// f.To and checks both ends' SHA-256 agree.
func sendIntact(t *testing.T, ctx context.Context, f Flow, size int) {
	t.Helper()
	l, err := listenIn(ctx, f.To)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type got struct {
		n   int64
		sum [32]byte
		err error
	}
	gc := make(chan got, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			gc <- got{err: err}
			return
		}
		defer c.Close()
		h := sha256.New()
		n, err := io.Copy(h, c)
		var g got
		g.n, g.err = n, err
		h.Sum(g.sum[:0])
		gc <- g
	}()
	c, err := dialIn(ctx, f.From, "tcp4", l.Addr().(*net.TCPAddr).AddrPort())
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	h := sha256.New()
	for i := 0; i < size; i += len(buf) {
		for j := range buf {
			buf[j] = byte(i/len(buf)*7 + j)
		}
		h.Write(buf)
		if _, err := c.Write(buf); err != nil {
			t.Fatalf("%s -> %s: %v", f.From.IP, f.To.IP, err)
		}
	}
	c.(*net.TCPConn).CloseWrite()
	var g got
	select {
	case g = <-gc:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s -> %s: receiver did not finish", f.From.IP, f.To.IP)
	}
	c.Close()
	var want [32]byte
	h.Sum(want[:0])
	if g.err != nil || g.n != int64(size) || g.sum != want {
		t.Fatalf("%s -> %s: received %d of %d bytes (err %v), sha256 match %v", f.From.IP, f.To.IP, g.n, size, g.err, g.sum == want)
	}
}

// needTopologies skips t unless it runs as root and without -short: it
// builds the bridge and tapswitch topologies (namespaces, a bridge, veth
// pairs and TAPs), then does what for seconds.
func needTopologies(t *testing.T, what string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, a bridge, veth pairs and TAPs")
	}
	if testing.Short() {
		t.Skip("builds a bridge and a tapswitch topology and " + what)
	}
}

// testPrefix is a fresh run prefix whose namespaces and links are swept in
// the test's cleanup, whatever happened.
func testPrefix(t *testing.T) string {
	prefix := NewPrefix()
	t.Cleanup(func() {
		if err := Sweep(prefix); err != nil {
			t.Errorf("sweep: %v", err)
		}
	})
	return prefix
}

// bothSystems builds pods pods behind a bridge and behind a tapswitch
// daemon under a fresh prefix, both closed in the cleanup, and returns a
// context that ends after timeout.
func bothSystems(t *testing.T, pods int, timeout time.Duration) (ctx context.Context, prefix string, br, ts Topology) {
	exe := buildTapswitch(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	prefix = testPrefix(t)
	bsub, err := testenv.FreeSubnet(252)
	if err != nil {
		t.Fatal(err)
	}
	tsub, err := testenv.FreeSubnet(251)
	if err != nil {
		t.Fatal(err)
	}
	br, err = BuildBridge(prefix, bsub, pods)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := br.Close(); err != nil {
			t.Errorf("bridge close: %v", err)
		}
	})
	run, err := NewTapswitchRun(prefix, tsub)
	if err != nil {
		t.Fatal(err)
	}
	ts, err = BuildTapswitch(ctx, exe, run, pods)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ts.Close(); err != nil {
			t.Errorf("tapswitch close: %v", err)
		}
	})
	return ctx, prefix, br, ts
}

// TestEndToEnd builds both topologies, checks that data crosses each
// intact, then measures ~3 s of single-stream TCP through each and logs the
// ratio. It asserts that both work, never how fast.
func TestEndToEnd(t *testing.T) {
	needTopologies(t, "runs traffic for several seconds")
	ctx, prefix, br, ts := bothSystems(t, 3, 2*time.Minute)
	rates := map[string]float64{}
	for _, topo := range []Topology{br, ts} {
		ps := topo.Pods()
		for _, f := range []Flow{{ps[0], ps[1]}, {ps[2], ps[0]}} {
			sendIntact(t, ctx, f, 64<<20)
		}
		if _, err := PingRTT(ctx, Flow{ps[1], ps[2]}, 3, 10*time.Millisecond); err != nil {
			t.Errorf("%s: %v", topo.System(), err)
		}
		tp, err := TCPThroughput(ctx, []Flow{{ps[0], ps[1]}}, 500*time.Millisecond, 3*time.Second, nil)
		if err != nil {
			t.Fatalf("%s: %v", topo.System(), err)
		}
		if tp.Bytes == 0 {
			t.Fatalf("%s: no bytes arrived in 3 s", topo.System())
		}
		rates[topo.System()] = tp.Gbps()
		t.Logf("%s: TCP 1 stream %.2f Gbit/s", topo.System(), tp.Gbps())
	}
	t.Logf("tapswitch/bridge = %.2f", rates["tapswitch"]/rates["bridge"])
	if err := ts.Close(); err != nil {
		t.Errorf("tapswitch close: %v", err)
	}
	if err := br.Close(); err != nil {
		t.Errorf("bridge close: %v", err)
	}
	if left := leftovers(t, prefix); len(left) > 0 {
		t.Errorf("left behind after Close: %v", left)
	}
}

// leftovers lists the namespaces still carrying prefix.
func leftovers(t *testing.T, prefix string) []string {
	ents, err := os.ReadDir("/var/run/netns")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if len(e.Name()) >= len(prefix) && e.Name()[:len(prefix)] == prefix {
			out = append(out, e.Name())
		}
	}
	return out
}
