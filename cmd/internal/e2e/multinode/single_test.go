package multinode

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tapswitch/tapswitch/cmd/internal/config"
	"github.com/tapswitch/tapswitch/cmd/internal/daemon"
	"github.com/tapswitch/tapswitch/cmd/internal/hostnat"
	"github.com/tapswitch/tapswitch/cmd/internal/nodetest"
	"github.com/tapswitch/tapswitch/internal/podnet"
)

// TestSecondDaemonRefusesFirst: with daemon A running in a node namespace,
// a daemon B on another state_dir that shares A's control socket, its
// gateway TAP or its nftables table refuses to start, and A's table (with
// A's mark), A's gateway (its queues, its mark) and A's pods' traffic are
// exactly as before. B logs no start or stop, only its error.
func TestSecondDaemonRefusesFirst(t *testing.T) {
	e := nodetest.NewNode(t, node1Subnet)
	e.Start()
	e.AddQuietPod("a", 10)
	e.AddQuietPod("b", 11)
	snapshot := func() (owner string, rules int, gwAlias string, gwQueues int) {
		t.Helper()
		err := e.InNode(func() error {
			var err error
			var exists bool
			if exists, owner, err = hostnat.TableOwner(e.Cfg.NAT.Table); err != nil || !exists {
				t.Errorf("table inet %s: exists %v, %v", e.Cfg.NAT.Table, exists, err)
			}
			c, _ := nftables.New()
			chains, _ := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
			for _, ch := range chains {
				if ch.Table.Name == e.Cfg.NAT.Table {
					rs, _ := c.GetRules(ch.Table, ch)
					rules += len(rs)
				}
			}
			l, err := netlink.LinkByName(e.GwIf)
			if err != nil {
				return err
			}
			gwAlias = l.Attrs().Alias
			tt := l.(*netlink.Tuntap)
			gwQueues = tt.Queues + tt.DisabledQueues
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	owner, rules, alias, queues := snapshot()
	if !strings.HasPrefix(owner, "tapswitch:") || owner != alias || rules == 0 || queues == 0 {
		t.Fatalf("daemon A: table owner %q, %d rules, gateway alias %q, %d queues attached", owner, rules, alias, queues)
	}
	other := t.TempDir()
	// A TAP of no tapswitch's, held open by this process (as a VM's or
	// another tool's would be), under the name a daemon B is told to use.
	held := e.Prefix[:len(e.Prefix)-1] + "h"
	var heldFds []*os.File
	err := e.InNode(func() error {
		l := &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: held}, Mode: netlink.TUNTAP_MODE_TAP,
			Flags: netlink.TUNTAP_MULTI_QUEUE_DEFAULTS, Queues: 1}
		if err := netlink.LinkAdd(l); err != nil {
			return err
		}
		heldFds = l.Fds
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, f := range heldFds {
			f.Close()
		}
	}()
	for _, tc := range []struct {
		name string
		set  func(c *config.Config)
		want string
	}{
		{"same-socket", func(c *config.Config) {}, "another tapswitch daemon is listening"},
		{"same-gateway", func(c *config.Config) { c.Socket = filepath.Join(other, "b.sock") }, "gateway"},
		{"gateway-held-open", func(c *config.Config) {
			c.Socket = filepath.Join(other, "d.sock")
			c.Gateway.Interface = held
			c.NAT.Table = "tapswitch-d"
		}, "held open by another process"},
		{"same-table", func(c *config.Config) {
			c.Socket = filepath.Join(other, "c.sock")
			c.Gateway.Interface = e.Prefix[:len(e.Prefix)-1] + "g2"
		}, "belongs to another tapswitch daemon"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := e.Cfg
			cfg.StateDir = filepath.Join(other, tc.name)
			tc.set(&cfg)
			core, logs := observer.New(zap.InfoLevel)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := e.InNode(func() error { return daemon.Run(ctx, cfg, zap.New(core)) })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("daemon B: %v, want an error containing %q", err, tc.want)
			}
			t.Logf("daemon B refused: %v", err)
			for _, en := range logs.All() {
				t.Errorf("daemon B logged %q before refusing; want only its error", en.Message)
			}
			o, r, a, q := snapshot()
			if o != owner || r != rules || a != alias || q != queues {
				t.Errorf("after B: table owner %q, %d rules, gateway alias %q, %d queues; before: %q, %d, %q, %d", o, r, a, q, owner, rules, alias, queues)
			}
			if _, err := os.Stat(filepath.Join(cfg.StateDir, "state.json")); err == nil {
				t.Error("daemon B wrote a state file")
			}
			if l, err := netlinkIn(e, held); err != nil || l.Attrs().Alias != "" {
				t.Errorf("the held TAP %s after B: %v, alias %q", held, err, l.Attrs().Alias)
			}
			if _, err := netlinkIn(e, cfg.Gateway.Interface); err == nil && cfg.Gateway.Interface != e.GwIf && cfg.Gateway.Interface != held {
				t.Errorf("daemon B made gateway %s", cfg.Gateway.Interface)
			}
			r2, err := podnet.Ping(context.Background(), e.Netns("a"), e.IP(11), podnet.PingOptions{Count: 2, Interval: 50 * time.Millisecond, Timeout: time.Second})
			if err != nil || r2.Received() == 0 {
				t.Errorf("pods of A after B refused: %s %v", r2, err)
			}
		})
	}
	ps, err := e.Client.Pods(context.Background())
	if err != nil || len(ps) != 2 {
		t.Errorf("daemon A after all: pods %+v %v", ps, err)
	}
}

func netlinkIn(e *nodetest.Env, name string) (netlink.Link, error) {
	var l netlink.Link
	err := e.InNode(func() (err error) { l, err = netlink.LinkByName(name); return err })
	return l, err
}

// TestNATStartupLog: the startup line of the nat rules says what the
// masquerade of traffic leaving the cluster does in words ("off", or
// "not CIDR"), never a zero prefix's "invalid Prefix".
func TestNATStartupLog(t *testing.T) {
	for _, tc := range []struct {
		on   bool
		want string
	}{{false, "off"}, {true, "not " + clusterCIDR.String()}} {
		e := nodetest.NewNode(t, node1Subnet)
		e.Cfg.NAT.ServiceMasquerade = true
		e.Cfg.NAT.Masquerade.Enabled = tc.on
		e.Cfg.NAT.Masquerade.ClusterCIDR = clusterCIDR.String()
		core, logs := observer.New(zap.InfoLevel)
		d, err := daemon.New(e.Cfg, zap.New(core))
		if err != nil {
			t.Fatal(err)
		}
		if err := e.InNode(func() error { return d.Start(context.Background()) }); err != nil {
			t.Fatal(err)
		}
		e.InNode(func() error { return d.Close(true) })
		got := logs.FilterMessage("nat rules installed").All()
		if len(got) != 1 {
			t.Fatalf("masquerade %v: %d \"nat rules installed\" lines", tc.on, len(got))
		}
		if v := got[0].ContextMap()["masquerade_outside"]; v != tc.want {
			t.Errorf("masquerade %v: masquerade_outside %q, want %q", tc.on, v, tc.want)
		}
	}
}
