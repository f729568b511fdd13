package multinode

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/tapswitch/tapswitch/cmd/internal/daemon"
	"github.com/tapswitch/tapswitch/cmd/internal/hostnat"
	"github.com/tapswitch/tapswitch/cmd/internal/nodetest"
)

var (
	node1Subnet = netip.MustParsePrefix("10.248.1.0/24")
	node2Subnet = netip.MustParsePrefix("10.248.2.0/24")
	clusterCIDR = netip.MustParsePrefix("10.248.0.0/16")
	serviceVIP  = netip.MustParseAddrPort("10.96.0.10:80")
)

// TestServiceSameNode is pod -> Service IP -> pod on one node, the DNAT done
// by a kube-proxy imitation in the node namespace. Without the daemon's
// masquerade the backend's reply is switched straight to the client
// un-NATed (from the backend's address, not the Service's) and the
// connection never opens; with it, the reply crosses the node and data
// flows both ways. The backend then sees the gateway's address.
func TestServiceSameNode(t *testing.T) {
	for _, tc := range []struct {
		name       string
		masquerade bool
	}{
		{"without-service-masquerade-fails", false},
		{"with-service-masquerade-works", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := nodetest.NewNode(t, node1Subnet)
			e.Cfg.NAT.ServiceMasquerade = tc.masquerade
			e.NodeSysctl("net/ipv4/ip_forward", "1") // the node routes pod -> Service -> pod back out
			e.Start()
			e.AddQuietPod("client", 10)
			e.AddQuietPod("backend", 11)
			backend := netip.AddrPortFrom(e.IP(11), 8080)
			if err := kubeProxyDNAT(e.NodeNS, serviceVIP, backend); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			peer, err := exchange(ctx, e.Netns("client"), e.Netns("backend"), backend, serviceVIP)
			if !tc.masquerade {
				if err == nil {
					t.Fatalf("client -> Service %s -> backend %s worked without the masquerade (backend saw %s); "+
						"the reply should have been switched to the client un-NATed", serviceVIP, backend, peer)
				}
				t.Logf("without the masquerade, as expected: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("client -> Service %s -> backend %s: %v", serviceVIP, backend, err)
			}
			if peer.Addr() != e.GwAddr {
				t.Errorf("backend saw the client as %s, want the gateway %s (masqueraded)", peer.Addr(), e.GwAddr)
			}
			t.Logf("client %s -> Service %s -> backend %s: data both ways; backend saw %s", e.IP(10), serviceVIP, backend, peer)

			// Pod to pod directly is not NATed: only DNATed connections are.
			peer, err = exchange(ctx, e.Netns("client"), e.Netns("backend"), netip.AddrPortFrom(e.IP(11), 8081), netip.AddrPortFrom(e.IP(11), 8081))
			if err != nil {
				t.Fatal(err)
			}
			if peer.Addr() != e.IP(10) {
				t.Errorf("pod to pod: backend saw %s, want the client's own %s", peer.Addr(), e.IP(10))
			}
		})
	}
}

// TestNATTableLifecycle: the daemon makes its table in the namespace it
// runs in, replaces a leftover one of its own at start (a crash left it:
// its rules carry this daemon's mark), refuses to start over a table of
// that name without its mark, and deletes it at a clean stop, leaving
// other tables alone.
func TestNATTableLifecycle(t *testing.T) {
	e := nodetest.NewNode(t, node1Subnet)
	table := e.Cfg.NAT.Table
	exists := func() bool {
		t.Helper()
		var ok bool
		if err := e.InNode(func() (err error) { ok, err = hostnat.Exists(table); return err }); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	// This daemon's instance ID, as a previous run left it.
	const instance = "00c0ffee00c0ffee"
	if err := os.MkdirAll(e.Cfg.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.Cfg.StateDir, "instance"), []byte(instance+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	leftover := func(mark string) {
		t.Helper()
		err := e.InNode(func() error {
			c, err := nftables.New()
			if err != nil {
				return err
			}
			t := &nftables.Table{Family: nftables.TableFamilyINet, Name: table}
			c.AddTable(t)
			c.DelTable(t)
			c.AddTable(t)
			ch := c.AddChain(&nftables.Chain{Name: "leftover", Table: t})
			var ud []byte
			if mark != "" {
				ud = append(append([]byte{0, byte(len(mark) + 1)}, mark...), 0)
			}
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{&expr.Counter{}}, UserData: ud})
			c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "someone-else"})
			return c.Flush()
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Unmarked: not provably ours, so the daemon refuses and leaves it.
	leftover("")
	d, err := daemon.New(e.Cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = e.InNode(func() error { return d.Start(context.Background()) })
	if err == nil || !strings.Contains(err.Error(), "carries no tapswitch mark") || !strings.Contains(err.Error(), "nft delete table inet "+table) {
		t.Fatalf("start over an unmarked table: %v", err)
	}
	e.InNode(func() error { return d.Close(false) })
	if !exists() {
		t.Fatal("the unmarked table was deleted")
	}
	// A leftover of this daemon's own (a kill -9 left it): replaced.
	leftover("tapswitch:" + instance)
	for round := 1; round <= 2; round++ {
		e.Start()
		if !exists() {
			t.Fatalf("round %d: table inet %s missing while the daemon runs", round, table)
		}
		var chains []string
		e.InNode(func() error {
			c, _ := nftables.New()
			cs, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
			for _, ch := range cs {
				if ch.Table.Name == table {
					chains = append(chains, ch.Name)
				}
			}
			return err
		})
		if len(chains) != 1 || chains[0] != "postrouting" {
			t.Errorf("round %d: chains of inet %s: %v, want [postrouting] (the leftover replaced)", round, table, chains)
		}
		e.Stop(false)
		if exists() {
			t.Errorf("round %d: table inet %s left after a clean stop", round, table)
		}
	}
	var other bool
	e.InNode(func() (err error) { other, err = hostnat.Exists("someone-else"); return err })
	if !other {
		t.Error("another table was touched")
	}
}
