package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ipam"
	"github.com/vishvananda/netlink"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/netns"
)

var (
	defaultDst  = net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
	defaultDst6 = net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
)

// ErrAlreadyAttached is the CNI error code of an ADD for an attachment
// (container ID and interface, or the pod name they make) the daemon has
// already: the spec leaves codes from 100 up to plugins (docs/cni.md).
const ErrAlreadyAttached uint = 100

// cmdAdd gets an address from IPAM (one of each family on a dual-stack
// node), has the daemon make the TAP in the runtime's namespace with them
// (MAC, MTU, default routes via the switch's gateway, a switch port bound
// to the addresses), adds IPAM's other routes and prints the result. A
// failure releases the addresses and the port.
func cmdAdd(args *skel.CmdArgs) error {
	c, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	// Before IPAM, which would allocate and then fail the same check.
	if err := checkPodNetns(args.Netns); err != nil {
		return err
	}
	cl, ctx, st, cancel, err := connect(c)
	if err != nil {
		return err
	}
	defer cancel()
	gw, gw6, err := gatewaysOf(st)
	if err != nil {
		return err
	}
	ic, err := c.ipamConf(st)
	if err != nil {
		return err
	}
	// Refused before IPAM: an IPAM DEL to undo a refused ADD would release
	// the existing attachment's address, which has the same container ID.
	name := podName(args.ContainerID, args.IfName)
	switch old, err := cl.Pod(ctx, name); {
	case err == nil && old.State == api.PodGone && old.ContainerID == args.ContainerID && old.IfName == args.IfName:
		// This attachment's namespace vanished (while the daemon was
		// down, say) and the runtime adds it again: free its port and
		// its addresses, as the DEL it missed would have.
		if err := cl.DeletePod(ctx, name); err != nil && !errors.Is(err, api.ErrNotFound) {
			return daemonErr(err)
		}
		if err := ipam.ExecDel(c.IPAM.Type, ic); err != nil {
			return fmt.Errorf("ipam %s: releasing gone pod %q's addresses: %w", c.IPAM.Type, name, err)
		}
		fmt.Fprintf(os.Stderr, "tapswitch-cni: pod %q was gone (%s); removed it and released its addresses\n", name, old.Reason)
	case err == nil && old.State == api.PodGone:
		// Another container's gone pod under the same name: the daemon
		// reclaims the name.
	case err == nil && old.ContainerID == args.ContainerID && old.IfName == args.IfName:
		return types.NewError(ErrAlreadyAttached, "already attached",
			fmt.Sprintf("container %s ifname %s: already attached as pod %q (DEL it first)", args.ContainerID, args.IfName, name))
	case err == nil:
		return types.NewError(ErrAlreadyAttached, "already attached",
			fmt.Sprintf("pod %q: already attached for container %s ifname %s; `tapswitch pod del %s` frees it", name, old.ContainerID, old.IfName, name))
	case !errors.Is(err, api.ErrNotFound):
		return daemonErr(err)
	}
	hasDefault, err := hasDefaultRoute(args.Netns)
	if err != nil {
		return err
	}
	r, err := ipam.ExecAdd(c.IPAM.Type, ic)
	if err != nil {
		return fmt.Errorf("ipam %s: %w", c.IPAM.Type, err)
	}
	release := func(cause error) error {
		if err := ipam.ExecDel(c.IPAM.Type, ic); err != nil {
			return errors.Join(cause, fmt.Errorf("ipam %s: releasing the address: %w", c.IPAM.Type, err))
		}
		return cause
	}
	ir, err := types100.NewResultFromResult(r)
	if err != nil {
		return release(fmt.Errorf("ipam %s: result: %w", c.IPAM.Type, err))
	}
	// The first address of each family.
	var ip, ip6 *types100.IPConfig
	for _, x := range ir.IPs {
		switch {
		case x.Address.IP.To4() != nil && ip == nil:
			ip = x
		case x.Address.IP.To4() == nil && ip6 == nil:
			ip6 = x
		}
	}
	if ip == nil {
		return release(fmt.Errorf("ipam %s: no IPv4 address in its result (tapswitch needs one; IPv6 comes in addition)", c.IPAM.Type))
	}
	if ip.Gateway != nil && !ip.Gateway.Equal(gw.AsSlice()) {
		return release(fmt.Errorf("ipam %s: gateway %s is not the switch's gateway %s", c.IPAM.Type, ip.Gateway, gw))
	}
	spec := api.PodSpec{
		Name: name, IP: ip.Address.String(), VLAN: c.VLAN,
		NetNS: args.Netns, IfName: args.IfName, ContainerID: args.ContainerID, Network: c.Name,
		NoDefaultRoute: hasDefault,
	}
	if ip6 != nil {
		if !gw6.IsValid() {
			return release(fmt.Errorf("ipam %s: IPv6 address %s, but the switch has no IPv6 pod subnet (the daemon's subnet_v6)", c.IPAM.Type, &ip6.Address))
		}
		if ip6.Gateway != nil && !ip6.Gateway.Equal(gw6.AsSlice()) {
			return release(fmt.Errorf("ipam %s: gateway %s is not the switch's IPv6 gateway %s", c.IPAM.Type, ip6.Gateway, gw6))
		}
		spec.IPs = []string{ip6.Address.String()}
	}
	pod, err := cl.AddPod(ctx, spec)
	if err != nil {
		return release(daemonErr(err))
	}
	var routes []*types.Route
	if !hasDefault {
		routes = append(routes, &types.Route{Dst: defaultDst, GW: gw.AsSlice()})
		if ip6 != nil {
			routes = append(routes, &types.Route{Dst: defaultDst6, GW: gw6.AsSlice()})
		}
	}
	var extra []*types.Route
	for _, rt := range ir.Routes {
		if rt.Dst.IP.To4() == nil && ip6 == nil {
			continue // no IPv6 on the pod
		}
		if ones, _ := rt.Dst.Mask.Size(); ones == 0 {
			continue // the daemon's default routes via the gateway
		}
		extra = append(extra, rt)
		routes = append(routes, rt)
	}
	if err := addRoutes(args.Netns, args.IfName, extra, gw, gw6); err != nil {
		if derr := cl.DeletePod(ctx, name); derr != nil {
			err = errors.Join(err, fmt.Errorf("removing the port: %w", derr))
		}
		return release(err)
	}
	ips := []*types100.IPConfig{{Interface: types100.Int(1), Address: ip.Address, Gateway: gw.AsSlice()}}
	if ip6 != nil {
		ips = append(ips, &types100.IPConfig{Interface: types100.Int(1), Address: ip6.Address, Gateway: gw6.AsSlice()})
	}
	res := &types100.Result{
		CNIVersion: types100.ImplementedSpecVersion,
		Interfaces: []*types100.Interface{
			{Name: st.GatewayIf, Mac: st.GatewayMA},
			{Name: args.IfName, Mac: pod.MAC, Sandbox: args.Netns},
		},
		IPs:    ips,
		Routes: routes,
		DNS:    ir.DNS,
	}
	if len(res.DNS.Nameservers) == 0 && len(res.DNS.Search) == 0 {
		res.DNS = c.DNS
	}
	return types.PrintResult(res, c.CNIVersion)
}

// checkPodNetns refuses a CNI_NETNS that is not a namespace, or is the
// plugin's own (the host's).
func checkPodNetns(path string) error {
	same, err := netns.FromPath(path).SameAs(netns.Self())
	if err != nil {
		return types.NewError(types.ErrInvalidNetNS, err.Error(), "")
	}
	if same {
		return types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("netns %s: is the host's namespace", path), "")
	}
	return nil
}

// hasDefaultRoute reports whether the namespace has an IPv4 default route
// already (the pod's first interface), which a second one leaves alone.
func hasDefaultRoute(ns string) (bool, error) {
	found := false
	err := netns.FromPath(ns).Run(func() error {
		rts, err := netlink.RouteList(nil, netlink.FAMILY_V4)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			return fmt.Errorf("routes: %w", err)
		}
		for _, rt := range rts {
			if rt.Dst == nil || isZeroMask(rt.Dst.Mask) {
				found = true
			}
		}
		return nil
	})
	return found, err
}

// addRoutes adds routes through ifName in the namespace; a route without a
// gateway goes via the switch's gateway of its family.
func addRoutes(ns, ifName string, routes []*types.Route, gw, gw6 netip.Addr) error {
	if len(routes) == 0 {
		return nil
	}
	return netns.FromPath(ns).Run(func() error {
		l, err := netlink.LinkByName(ifName)
		if err != nil {
			return fmt.Errorf("%s: %w", ifName, err)
		}
		for _, rt := range routes {
			via := rt.GW
			if via == nil {
				via = gatewayFor(rt.Dst.IP, gw, gw6).AsSlice()
			}
			dst := rt.Dst
			if err := netlink.RouteReplace(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: &dst, Gw: via}); err != nil {
				return fmt.Errorf("%s: route %s via %s: %w", ifName, &dst, via, err)
			}
		}
		return nil
	})
}

// cmdCheck verifies the attachment against the daemon, the namespace and
// the previous result: a port up on the switch under the container's ID,
// a TAP named CNI_IFNAME in the same namespace with the MAC and address,
// the default route via the gateway, and IPAM's own check.
func cmdCheck(args *skel.CmdArgs) error {
	c, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	if c.RawPrevResult == nil {
		return types.NewError(types.ErrInvalidNetworkConfig, "CHECK: no prevResult in the network config", "")
	}
	if err := version.ParsePrevResult(&c.PluginConf); err != nil {
		return types.NewError(types.ErrDecodingFailure, "prevResult: "+err.Error(), "")
	}
	prev, err := types100.NewResultFromResult(c.PrevResult)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, "prevResult: "+err.Error(), "")
	}
	cl, ctx, st, cancel, err := connect(c)
	if err != nil {
		return err
	}
	defer cancel()
	gw, gw6, err := gatewaysOf(st)
	if err != nil {
		return err
	}
	name := podName(args.ContainerID, args.IfName)
	pod, err := cl.Pod(ctx, name)
	if errors.Is(err, api.ErrNotFound) {
		return types.NewError(types.ErrUnknownContainer, fmt.Sprintf("container %s ifname %s: not attached to the switch", args.ContainerID, args.IfName), "")
	}
	if err != nil {
		return daemonErr(err)
	}
	if pod.ContainerID != args.ContainerID || pod.IfName != args.IfName {
		return fmt.Errorf("pod %q: belongs to container %s ifname %s, not %s %s", name, pod.ContainerID, pod.IfName, args.ContainerID, args.IfName)
	}
	if pod.State != api.PodUp {
		return fmt.Errorf("pod %q: %s (%s)", name, pod.State, pod.Reason)
	}
	ports, err := cl.Ports(ctx)
	if err != nil {
		return daemonErr(err)
	}
	portUp := false
	for _, p := range ports {
		if p.Name == name && p.ID == pod.Port && p.State == api.PodUp {
			portUp = true
		}
	}
	if !portUp {
		return fmt.Errorf("pod %q: no switch port %d up", name, pod.Port)
	}
	same, err := netns.FromPath(pod.Netns).SameAs(netns.FromPath(args.Netns))
	if err != nil {
		return err
	}
	if !same {
		return fmt.Errorf("pod %q: attached in netns %s, not %s", name, pod.Netns, args.Netns)
	}
	cidrs := pod.IPs
	if len(cidrs) == 0 { // a daemon from before dual-stack pods
		cidrs = []string{pod.IP}
	}
	for _, cidr := range cidrs {
		addr, err := netip.ParsePrefix(cidr)
		if err != nil {
			return fmt.Errorf("pod %q: ip %q: %w", name, cidr, err)
		}
		found := false
		for _, ipc := range prev.IPs {
			if ipc.Address.IP.Equal(addr.Addr().AsSlice()) {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("pod %q: address %s is not in prevResult", name, addr)
		}
		wantDefault := false
		for _, rt := range prev.Routes {
			if ones, _ := rt.Dst.Mask.Size(); ones == 0 && (rt.Dst.IP.To4() != nil) == addr.Addr().Is4() {
				wantDefault = true
			}
		}
		if err := checkInside(args.Netns, args.IfName, pod.MAC, addr, gatewayFor(addr.Addr().AsSlice(), gw, gw6), wantDefault); err != nil {
			return fmt.Errorf("pod %q: %w", name, err)
		}
	}
	return c.ipamRun(st, ipam.ExecCheck)
}

// checkInside looks at the TAP from inside the namespace: its MAC, the
// address addr and, with wantDefault, the default route of addr's family
// via gw.
func checkInside(ns, ifName, mac string, addr netip.Prefix, gw netip.Addr, wantDefault bool) error {
	return netns.FromPath(ns).Run(func() error {
		l, err := netlink.LinkByName(ifName)
		if err != nil {
			return fmt.Errorf("%s: %w", ifName, err)
		}
		tt, ok := l.(*netlink.Tuntap)
		if !ok || tt.Mode != netlink.TUNTAP_MODE_TAP {
			return fmt.Errorf("%s: is a %s, not a TAP", ifName, l.Type())
		}
		if got := l.Attrs().HardwareAddr.String(); got != mac {
			return fmt.Errorf("%s: mac %s, want %s", ifName, got, mac)
		}
		if l.Attrs().Flags&net.FlagUp == 0 {
			return fmt.Errorf("%s: down", ifName)
		}
		family := netlink.FAMILY_V4
		if addr.Addr().Is6() {
			family = netlink.FAMILY_V6
		}
		addrs, err := netlink.AddrList(l, family)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			return fmt.Errorf("%s: addresses: %w", ifName, err)
		}
		has := false
		want := ipNet(addr)
		for _, a := range addrs {
			if a.IPNet != nil && a.IPNet.String() == want.String() {
				has = true
			}
		}
		if !has {
			return fmt.Errorf("%s: address %s missing", ifName, addr)
		}
		if !wantDefault {
			return nil
		}
		rts, err := netlink.RouteList(l, family)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			return fmt.Errorf("%s: routes: %w", ifName, err)
		}
		for _, rt := range rts {
			if (rt.Dst == nil || isZeroMask(rt.Dst.Mask)) && rt.Gw.Equal(gw.AsSlice()) {
				return nil
			}
		}
		return fmt.Errorf("%s: no default route via %s", ifName, gw)
	})
}

func isZeroMask(m net.IPMask) bool {
	ones, _ := m.Size()
	return ones == 0
}
