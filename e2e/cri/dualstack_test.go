package cri

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestContainerdCRIDualStack is the dual-stack node under the same
// runtime: the daemon with subnet_v6 and gateway.address_v6, the shipped
// conflist with host-local "ranges" naming an IPv4 and an IPv6 range set
// (as docs/cni.md's dual-stack conflist does). Two sandboxes get one
// address of each family, which crictl inspectp reports (status.network.ip
// and additionalIps) as the daemon does; they ping each other and the
// gateway over IPv6 from inside their namespaces, the switch's neighbour
// table has their IPv6 addresses from NDP; stopping and removing them
// leaves no port, reservation or namespace.
func TestContainerdCRIDualStack(t *testing.T) {
	start := time.Now()
	n := newNode(t)
	n.env.useIPv6(t)
	ranges := func(ipam map[string]any) {
		ipam["ranges"] = []any{
			[]any{map[string]any{"subnet": n.env.Subnet.String(), "gateway": n.env.GwAddr.String()}},
			[]any{map[string]any{"subnet": n.env.Subnet6.String(), "gateway": n.env.GwAddr6.String()}},
		}
	}
	n.writeConfigMap(n.conflist(ranges), n.daemonConfig(n.stateDir))
	n.installCNI()
	n.startContainerd()
	n.startDaemon()

	p1, p2 := n.mustRunp("ds1"), n.mustRunp("ds2")
	for _, p := range []sandbox{p1, p2} {
		if p.State != "SANDBOX_READY" || p.Netns == "" || len(p.IPs) != 2 {
			t.Fatalf("sandbox %+v: want ready, a netns, two addresses (ip and one in additionalIps)", p)
		}
		v4, v6 := p.IPs[0], p.IPs[1]
		if !n.env.Subnet.Contains(v4) || v4 == n.env.GwAddr || !n.env.Subnet6.Contains(v6) || v6 == n.env.GwAddr6 {
			t.Errorf("sandbox %.12s: ip %s, additionalIps %s: want one in %s and one in %s, neither the gateway", p.ID, v4, v6, n.env.Subnet, n.env.Subnet6)
		}
	}
	if p1.IPs[0] == p2.IPs[0] || p1.IPs[1] == p2.IPs[1] {
		t.Fatalf("the pods share an address: %v and %v", p1.IPs, p2.IPs)
	}
	n.agrees(p1, p2)
	want := sortedOf(p1.IPs[0].String(), p1.IPs[1].String(), p2.IPs[0].String(), p2.IPs[1].String())
	if got := n.reservations(); !slices.Equal(got, want) {
		t.Errorf("host-local holds %v, want %v", got, want)
	}
	n.ping(p1, p2.IPs[1], n.env.GwAddr6, p2.IP)
	n.ping(p2, p1.IPs[1], n.env.GwAddr6)

	// NDP snooping: each pod's IPv6 address (it solicited the gateway's
	// and its peer's, and answered its peer) on the pod's own port.
	portOf := map[string]int{}
	for _, p := range n.pods() {
		portOf[p.ContainerID] = p.Port
	}
	neigh := n.neighbours()
	for _, p := range []sandbox{p1, p2} {
		found := false
		for _, nb := range neigh {
			if nb.IP == p.IPs[1] {
				found = true
				if nb.Port != portOf[p.ID] || portOf[p.ID] == 0 {
					t.Errorf("neighbour %s on port %d (%s), want the pod's port %d", nb.IP, nb.Port, nb.PortName, portOf[p.ID])
				}
			}
		}
		if !found {
			t.Errorf("tapswitch arp: no neighbour %s (pod %.12s) in %+v", p.IPs[1], p.ID, neigh)
		}
	}

	for _, p := range []sandbox{p1, p2} {
		if err := n.remove(p.ID); err != nil {
			t.Fatal(err)
		}
	}
	n.agrees()
	if got := n.reservations(); len(got) != 0 {
		t.Errorf("host-local holds %v after both pods were removed", got)
	}
	if got := n.liveNetns(); len(got) != 0 {
		t.Errorf("sandbox namespaces left: %v", got)
	}
	for _, nb := range n.neighbours() {
		if nb.IP == p1.IPs[1] || nb.IP == p2.IPs[1] {
			t.Errorf("neighbour %s still listed (port %d) after its pod was removed", nb.IP, nb.Port)
		}
	}
	if out, _ := n.crictl("pods", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("sandboxes still listed after rmp: %s", out)
	}
	t.Logf("whole test: %v", time.Since(start).Round(time.Second))
}
