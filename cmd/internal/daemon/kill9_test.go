package daemon_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/cmd/internal/config"
	"github.com/tapswitch/tapswitch/cmd/internal/daemon"
	"github.com/tapswitch/tapswitch/cmd/internal/logging"
	"github.com/tapswitch/tapswitch/cmd/internal/nodetest"
	"github.com/tapswitch/tapswitch/internal/podnet"
)

// daemonEnv makes the test binary run `tapswitch run --config FILE`
// instead of the tests, so a test can kill a real daemon process.
const daemonEnv = "TAPSWITCH_TEST_DAEMON_CONFIG"

// clientEnv makes it list the ports of the daemon on that socket and print
// the client's error (TestBadInputs runs it as nobody).
const clientEnv = "TAPSWITCH_TEST_CLIENT_SOCKET"

func TestMain(m *testing.M) {
	if path := os.Getenv(daemonEnv); path != "" {
		os.Exit(runDaemon(path))
	}
	if sock := os.Getenv(clientEnv); sock != "" {
		_, err := api.NewClient(sock).Ports(context.Background())
		fmt.Println(err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runDaemon(path string) int {
	load := func() (config.Config, error) { return config.Load(path) }
	cfg, err := load()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	log, lvl, err := logging.JSONLevel(cfg.LogLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := daemon.Serve(cfg, load, log, &lvl); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// startProcess runs a daemon process on e's config and waits for its API.
func startProcess(t *testing.T, e *nodetest.Env, cfgPath string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	// Under -race, a race in the daemon process ends it, so the test that
	// drives it fails rather than printing a report nobody reads.
	cmd.Env = append(os.Environ(), daemonEnv+"="+cfgPath, "GORACE=halt_on_error=1")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := e.Client.Status(bg)
		if err == nil && st.PID == cmd.Process.Pid {
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon process did not answer within 10s: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRestartAfterKill9 kills a daemon process with SIGKILL while a pod
// pings another every 5 ms, starts a new one at once, and measures how long
// the pods could not talk. The pods are not reconfigured: the new process
// re-attaches their persistent TAPs.
func TestRestartAfterKill9(t *testing.T) {
	e := nodetest.New(t)
	e.Cfg.LogLevel = "warn"
	cfgPath := e.WriteConfig()
	first := startProcess(t, e, cfgPath)
	e.AddQuietPod("p1", 2)
	e.AddQuietPod("p2", 3)
	e.MustPing(t, "p1", 3, 2)

	// The kernel's linkwatch handles link events at most once a second,
	// host-wide: a kill within a second of the pods' creation would add
	// that delay to the measurement. Production kills are not so timed.
	time.Sleep(1500 * time.Millisecond)
	const interval = 5 * time.Millisecond
	const count = 600 // 3 s
	res := make(chan podnet.PingResult, 1)
	go func() {
		r, _ := podnet.Ping(bg, e.Netns("p1"), e.IP(3), podnet.PingOptions{Count: count, Interval: interval, Timeout: time.Second})
		res <- r
	}()
	time.Sleep(500 * time.Millisecond)
	killed := time.Now()
	first.Process.Signal(syscall.SIGKILL)
	first.Wait()
	second := startProcess(t, e, cfgPath)
	up := time.Since(killed)
	r := <-res
	gap := r.LongestGap()
	t.Logf("kill -9 to new daemon answering its API: %v; ping every %v: %s; longest gap between answered pings: %v (%d lost)",
		up.Round(time.Millisecond), interval, r, gap.Round(time.Millisecond), r.Sent-r.Received())
	if r.Received() < count/2 {
		t.Fatalf("traffic did not resume: %s", r)
	}
	if gap > 2*time.Second {
		t.Errorf("gap %v: want well under 2s", gap)
	}
	st, err := e.Client.Status(bg)
	if err != nil {
		t.Fatal(err)
	}
	if st.Reattached != 2 {
		t.Errorf("re-attached %d pods, want 2", st.Reattached)
	}
	e.MustPing(t, "p2", 2, 3)
	// A clean stop that removes everything, as `run --remove-pods` would.
	second.Process.Signal(syscall.SIGTERM)
	second.Wait()
}
