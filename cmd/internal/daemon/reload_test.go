package daemon_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/cmd/internal/config"
	"github.com/tapswitch/tapswitch/cmd/internal/nodetest"
	"github.com/tapswitch/tapswitch/fdb"
)

// TestReload: a reload changes the FDB and ARP settings in place; one that
// does not validate, or that changes what only a restart applies, is
// refused, names why, and changes nothing.
func TestReload(t *testing.T) {
	e := nodetest.New(t)
	d := e.Start()

	next := e.Cfg
	next.FDB.Limit, next.FDB.Policy, next.FDB.Ageing = 500, "evict-fair", time.Minute
	next.ARP.Suppress = !e.Cfg.ARP.Suppress
	next.ARP.PodRouterAdvertisements = !e.Cfg.ARP.PodRouterAdvertisements
	if err := d.Reload(next); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if c := d.Switch().FDB().Config(); c.Limit != 500 || c.Policy != fdb.EvictFair || c.Ageing != time.Minute {
		t.Fatalf("fdb after reload: %+v", c)
	}
	if d.Switch().ARP().Config().Suppress != next.ARP.Suppress {
		t.Fatal("arp suppression not reloaded")
	}
	if d.Switch().ARP().Config().PodRouterAdvertisements != next.ARP.PodRouterAdvertisements {
		t.Fatal("arp.pod_router_advertisements not reloaded")
	}

	restart := next
	restart.Subnet = "10.99.0.0/24"
	restart.Gateway.Address = "10.99.0.1"
	restart.Queues = next.Queues + 1
	restart.FDB.Limit = 600
	err := d.Reload(restart)
	if err == nil || !strings.Contains(err.Error(), "subnet") || !strings.Contains(err.Error(), "gateway") || !strings.Contains(err.Error(), "queues") {
		t.Fatalf("reload changing subnet, gateway and queues: %v", err)
	}
	bad := next
	bad.FDB.Policy = "evict-fiar"
	if err := d.Reload(bad); err == nil || !strings.Contains(err.Error(), "evict-fiar") {
		t.Fatalf("reload with a bad policy: %v", err)
	}
	if c := d.Switch().FDB().Config(); c.Limit != 500 {
		t.Fatalf("a refused reload changed the FDB: %+v", c)
	}
}

// TestSIGHUP drives the reload as an operator does, on a daemon process
// run by Serve (what `tapswitch run` runs): a broken file keeps the running
// configuration and the daemon serving; a good one applies.
func TestSIGHUP(t *testing.T) {
	e := nodetest.New(t)
	e.Cfg.LogLevel = "error" // the refused reload logs an error line: expected
	cfgPath := filepath.Join(e.Dir, "config.yaml")
	write := func(c config.Config) {
		b, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(e.Cfg)
	proc := startProcess(t, e, cfgPath)
	limit := func() int {
		st, err := e.Client.Stats(bg)
		if err != nil {
			t.Fatalf("daemon after SIGHUP: %v", err)
		}
		return st.FDB.Limit
	}
	want := e.Cfg.FDB.Limit

	if err := os.WriteFile(cfgPath, []byte("fdb: {limit: -1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	proc.Process.Signal(syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
	if got := limit(); got != want {
		t.Fatalf("a broken file changed the FDB limit to %d", got)
	}

	good := e.Cfg
	good.FDB.Limit = 321
	write(good)
	proc.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(5 * time.Second)
	for limit() != 321 {
		if time.Now().After(deadline) {
			t.Fatalf("a good file did not apply: limit %d", limit())
		}
		time.Sleep(20 * time.Millisecond)
	}
	proc.Process.Signal(syscall.SIGTERM)
	if err := proc.Wait(); err != nil {
		t.Errorf("daemon process: %v", err)
	}
}
