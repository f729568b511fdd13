package daemon_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tapswitch/tapswitch/cmd/internal/config"
	"github.com/tapswitch/tapswitch/cmd/internal/daemon"
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
	if err := d.Reload(next); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if c := d.Switch().FDB().Config(); c.Limit != 500 || c.Policy != fdb.EvictFair || c.Ageing != time.Minute {
		t.Fatalf("fdb after reload: %+v", c)
	}
	if d.Switch().ARP().Config().Suppress != next.ARP.Suppress {
		t.Fatal("arp suppression not reloaded")
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

// TestReloadSignalKeepsConfigOnBadFile drives the SIGHUP path: an invalid
// file keeps the running configuration, a good one applies.
func TestReloadSignalKeepsConfigOnBadFile(t *testing.T) {
	e := nodetest.New(t)
	d := e.Start()
	sig := make(chan os.Signal)
	good := e.Cfg
	good.FDB.Limit = 321
	var next config.Config
	var loadErr error
	r := &daemon.Reloader{Signals: sig, Load: func() (config.Config, error) { return next, loadErr }}

	loadErr = errors.New("config /etc/x.yaml: line 3: bad")
	d.ReloadNow(r)
	if c := d.Switch().FDB().Config(); c.Limit != e.Cfg.FDB.Limit {
		t.Fatalf("a bad file changed the limit to %d", c.Limit)
	}
	next, loadErr = good, nil
	d.ReloadNow(r)
	if c := d.Switch().FDB().Config(); c.Limit != 321 {
		t.Fatalf("a good file did not apply: limit %d", c.Limit)
	}
}
