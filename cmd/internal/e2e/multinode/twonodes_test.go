package multinode

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/tapswitch/tapswitch/cmd/internal/nodetest"
	"github.com/tapswitch/tapswitch/internal/podnet"
	"github.com/tapswitch/tapswitch/netns"
)

var (
	underlay1 = netip.MustParsePrefix("192.168.250.1/30") // node1's end of the underlay
	underlay2 = netip.MustParsePrefix("192.168.250.2/30") // node2's
	external1 = netip.MustParsePrefix("192.168.251.1/30") // node1's uplink to the outside host
	outside   = netip.MustParsePrefix("192.168.251.2/30") // a host outside the cluster
)

// TestTwoNodes is pod-to-pod traffic across nodes on the real dataplane: two
// nodes (namespaces), each with its own daemon and pod subnet, joined by a
// veth underlay with a route to each other's pod CIDR. Node1 masquerades
// pod traffic to destinations outside the cluster CIDR, and only that.
func TestTwoNodes(t *testing.T) {
	n1 := nodetest.NewNode(t, node1Subnet)
	n2 := nodetest.NewNode(t, node2Subnet)
	n1.Cfg.NAT.Masquerade.Enabled = true
	n1.Cfg.NAT.Masquerade.ClusterCIDR = clusterCIDR.String()

	out := n1.Prefix + "out" // swept with node1's namespaces
	if _, err := netns.CreateNamed(out); err != nil {
		t.Fatal(err)
	}
	if err := podnet.DisableIPv6(out); err != nil {
		t.Fatal(err)
	}
	underlay(t, n1.NodeNS, "ul0", underlay1, n2.NodeNS, "ul0", underlay2)
	underlay(t, n1.NodeNS, "ext0", external1, out, "eth0", outside)
	// Each node routes the other's pod CIDR via the underlay peer; the
	// outside host knows no pod CIDR (its replies work only masqueraded).
	if err := route(n1.NodeNS, node2Subnet, underlay2.Addr()); err != nil {
		t.Fatal(err)
	}
	if err := route(n2.NodeNS, node1Subnet, underlay1.Addr()); err != nil {
		t.Fatal(err)
	}
	n1.NodeSysctl("net/ipv4/ip_forward", "1")
	n2.NodeSysctl("net/ipv4/ip_forward", "1")
	n1.Start()
	n2.Start()
	n1.AddQuietPod("a", 10)
	n2.AddQuietPod("b", 10)
	podA, podB := n1.IP(10), n2.IP(10)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("pod-to-pod-no-nat", func(t *testing.T) {
		dst := netip.AddrPortFrom(podB, 8080)
		peer, err := exchange(ctx, n1.Netns("a"), n2.Netns("b"), dst, dst)
		if err != nil {
			t.Fatalf("pod a %s -> pod b %s on the other node: %v", podA, dst, err)
		}
		if peer.Addr() != podA {
			t.Errorf("pod b saw the client as %s, want pod a's own %s (no NAT between pods)", peer.Addr(), podA)
		}
		// And back: b dials a.
		dst = netip.AddrPortFrom(podA, 8080)
		if peer, err = exchange(ctx, n2.Netns("b"), n1.Netns("a"), dst, dst); err != nil {
			t.Fatalf("pod b -> pod a: %v", err)
		}
		if peer.Addr() != podB {
			t.Errorf("pod a saw the client as %s, want pod b's %s", peer.Addr(), podB)
		}
	})

	t.Run("ttl-drops-at-each-node", func(t *testing.T) {
		src, ttl, err := udpTTL(n1.Netns("a"), n2.Netns("b"), netip.AddrPortFrom(podB, 9999))
		if err != nil {
			t.Fatal(err)
		}
		if src != podA {
			t.Errorf("datagram from %s, want %s", src, podA)
		}
		if ttl != 62 { // 64, less one at node1 and one at node2
			t.Errorf("TTL %d at pod b, want 62 (two routers: node1, node2)", ttl)
		}
	})

	t.Run("pod-arps-for-gateway-only", func(t *testing.T) {
		var ips []netip.Addr
		err := in(n1.Netns("a"), func() error {
			l, err := netlink.LinkByName("eth0")
			if err != nil {
				return err
			}
			ns, err := netlink.NeighList(l.Attrs().Index, netlink.FAMILY_V4)
			for _, n := range ns {
				a, _ := netip.AddrFromSlice(n.IP.To4())
				ips = append(ips, a)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		gw, remote := false, false
		for _, a := range ips {
			gw = gw || a == n1.GwAddr
			remote = remote || a == podB
		}
		if !gw || remote {
			t.Errorf("pod a's neighbours %v: want the gateway %s and never the remote pod %s", ips, n1.GwAddr, podB)
		}
	})

	t.Run("pod-to-other-node", func(t *testing.T) {
		// Node2 does not masquerade: node1 sees pod b itself (X2).
		dst := netip.AddrPortFrom(underlay1.Addr(), 8080)
		peer, err := exchange(ctx, n2.Netns("b"), n1.NodeNS, dst, dst)
		if err != nil {
			t.Fatalf("pod b -> node1 %s: %v", dst, err)
		}
		if peer.Addr() != podB {
			t.Errorf("node1 saw the client as %s, want pod b's %s (no NAT)", peer.Addr(), podB)
		}
		// Node1 masquerades what leaves the cluster CIDR, and a node's
		// address is outside it (as with ip-masq-agent's nonMasqueradeCIDRs
		// holding only the pod CIDR): node2 sees node1's underlay address.
		dst = netip.AddrPortFrom(underlay2.Addr(), 8080)
		if peer, err = exchange(ctx, n1.Netns("a"), n2.NodeNS, dst, dst); err != nil {
			t.Fatalf("pod a -> node2 %s: %v", dst, err)
		}
		if peer.Addr() != underlay1.Addr() {
			t.Errorf("node2 saw pod a as %s, want node1's %s (outside the cluster CIDR: masqueraded)", peer.Addr(), underlay1.Addr())
		}
	})

	t.Run("service-backend-on-other-node-no-nat", func(t *testing.T) {
		// kube-proxy on node1 picks pod b: the connection leaves by the
		// underlay, not the gateway, so neither masquerade applies and
		// the reply comes back through node1's conntrack.
		backend := netip.AddrPortFrom(podB, 8081)
		if err := kubeProxyDNAT(n1.NodeNS, serviceVIP, backend); err != nil {
			t.Fatal(err)
		}
		peer, err := exchange(ctx, n1.Netns("a"), n2.Netns("b"), backend, serviceVIP)
		if err != nil {
			t.Fatalf("pod a -> Service %s -> pod b %s: %v", serviceVIP, backend, err)
		}
		if peer.Addr() != podA {
			t.Errorf("pod b saw the client as %s, want pod a's %s", peer.Addr(), podA)
		}
	})

	t.Run("masquerade-outside-cluster-only", func(t *testing.T) {
		dst := netip.AddrPortFrom(outside.Addr(), 8080)
		peer, err := exchange(ctx, n1.Netns("a"), out, dst, dst)
		if err != nil {
			t.Fatalf("pod a -> outside host %s: %v", dst, err)
		}
		if peer.Addr() != external1.Addr() {
			t.Errorf("outside host saw the client as %s, want node1's address %s (masqueraded)", peer.Addr(), external1.Addr())
		}
	})
}
