// Command tapswitch-cni is the CNI plugin (spec 1.1) that attaches a pod to
// the node's tapswitch: ADD asks the daemon, over its control socket, for a
// TAP named CNI_IFNAME in the runtime's namespace CNI_NETNS with an address
// from the IPAM plugin the network config names (host-local, by CNI
// convention); DEL undoes that and is idempotent; CHECK verifies the TAP,
// its addresses and the switch port; STATUS fails while the daemon is down;
// GC removes the attachments of this network the runtime no longer lists.
//
// The container runtime runs it with the CNI_* environment and the network
// config on stdin; it prints the result (or a CNI error) on stdout.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
)

// Plugin is the plugin's type, the config's "type" and its binary's name.
const Plugin = "tapswitch"

// opTimeout bounds one command's talk with the daemon; statusTimeout a
// STATUS, which the runtime calls often.
const (
	opTimeout     = 90 * time.Second
	statusTimeout = 5 * time.Second
)

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add: cmdAdd, Del: cmdDel, Check: cmdCheck, GC: cmdGC, Status: cmdStatus,
	}, version.All, "tapswitch-cni: attaches pods to the node's tapswitch (github.com/tapswitch/tapswitch)")
}

// netConf is the network config: the standard keys plus tapswitch's own.
type netConf struct {
	types.PluginConf
	// Socket is the daemon's control socket; default api.DefaultSocket.
	Socket string `json:"socket,omitempty"`
	// VLAN is the pods' access VLAN; 0 is VLAN 1 (the only one reaching
	// the gateway).
	VLAN uint16 `json:"vlan,omitempty"`

	raw map[string]any // the whole config, to hand on to the IPAM plugin
}

func loadConf(b []byte) (*netConf, error) {
	c := &netConf{}
	if err := json.Unmarshal(b, c); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "network config: "+err.Error(), "")
	}
	if err := json.Unmarshal(b, &c.raw); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "network config: "+err.Error(), "")
	}
	if c.IPAM.Type == "" {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, `network config: ipam.type: required (e.g. "host-local")`, "")
	}
	if c.VLAN >= 4095 {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("network config: vlan %d: want 1-4094", c.VLAN), "")
	}
	if c.Socket == "" {
		c.Socket = api.DefaultSocket
	}
	return c, nil
}

// ipamConf is the config handed to the IPAM plugin. A host-local "ipam"
// without "ranges" or "subnet" gets the switch's subnet and gateway (and,
// on a dual-stack node, its IPv6 subnet and gateway as a second range set),
// so one conflist serves every node whatever its pod CIDRs. drop names
// top-level keys to leave out (GC's valid-attachments on a per-attachment
// DEL).
func (c *netConf) ipamConf(st api.Status, drop ...string) ([]byte, error) {
	m := make(map[string]any, len(c.raw))
	for k, v := range c.raw {
		m[k] = v
	}
	for _, k := range drop {
		delete(m, k)
	}
	im, _ := m["ipam"].(map[string]any)
	if c.IPAM.Type == "host-local" && im != nil && im["ranges"] == nil && im["subnet"] == nil {
		gw, gw6, err := gatewaysOf(st)
		if err != nil {
			return nil, err
		}
		cp := make(map[string]any, len(im)+1)
		for k, v := range im {
			cp[k] = v
		}
		ranges := []any{[]any{map[string]any{"subnet": st.Subnet, "gateway": gw.String()}}}
		if gw6.IsValid() {
			ranges = append(ranges, []any{map[string]any{"subnet": st.SubnetV6, "gateway": gw6.String()}})
		}
		cp["ranges"] = ranges
		m["ipam"] = cp
	}
	return json.Marshal(m)
}

// ipamRun hands the attachment to the IPAM plugin for a CHECK or a DEL
// (ipam.ExecCheck, ipam.ExecDel: the same signature, the same config and
// the same error wrapping), the last step of cmdCheck and cmdDel.
func (c *netConf) ipamRun(st api.Status, op func(plugin string, netconf []byte) error) error {
	ic, err := c.ipamConf(st)
	if err != nil {
		return err
	}
	if err := op(c.IPAM.Type, ic); err != nil {
		return fmt.Errorf("ipam %s: %w", c.IPAM.Type, err)
	}
	return nil
}

// gatewaysOf is the switch's gateway address, and its IPv6 one on a
// dual-stack node (invalid otherwise).
func gatewaysOf(st api.Status) (gw, gw6 netip.Addr, err error) {
	s, _, _ := strings.Cut(st.Gateway, "/")
	if gw, err = netip.ParseAddr(s); err != nil {
		return gw, gw6, fmt.Errorf("tapswitch daemon: gateway %q: %w", st.Gateway, err)
	}
	if st.GatewayV6 != "" {
		if gw6, err = netip.ParseAddr(st.GatewayV6); err != nil || !gw6.Is6() {
			return gw, gw6, fmt.Errorf("tapswitch daemon: gateway_v6 %q: not an IPv6 address", st.GatewayV6)
		}
	}
	return gw, gw6, nil
}

// gatewayFor is the gateway of ip's family: gw6 for IPv6.
func gatewayFor(ip net.IP, gw, gw6 netip.Addr) netip.Addr {
	if ip.To4() == nil {
		return gw6
	}
	return gw
}

// podName is the daemon's name for the attachment (containerID, ifName): a
// DNS label, "cni-" and the first 12 characters of the container ID (what
// `crictl ps` shows), plus the interface for other interfaces than eth0.
// An ID that does not make a label is hashed instead. Two IDs sharing 12
// characters get the same name; the daemon refuses the second ADD rather
// than mixing them up, and DEL and GC compare the full ID it recorded.
func podName(containerID, ifName string) string {
	base := strings.ToLower(containerID)
	if len(base) > 12 {
		base = base[:12]
	}
	if !isLabel(base) {
		base = hash(containerID)
	}
	name := "cni-" + base
	if ifName != "eth0" {
		suffix := strings.ToLower(ifName)
		if !isLabel(suffix) {
			suffix = hash(ifName)[:8]
		}
		name += "-" + suffix
	}
	return name
}

func isLabel(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(s)-1) {
			return false
		}
	}
	return true
}

func hash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])[:12]
}

// daemonErr turns a failure to reach the daemon into CNI's "try again
// later" (11), which runtimes retry; other errors keep their text.
func daemonErr(err error) error {
	var de *api.DialError
	if errors.As(err, &de) {
		return types.NewError(types.ErrTryAgainLater, "tapswitch daemon not reachable", err.Error())
	}
	return fmt.Errorf("tapswitch: %w", err)
}

// connect opens a call's conversation with the daemon: a client, the call's
// deadline, and the daemon's status, read first so that a daemon that is
// down is "try again later" before the call changes anything.
func connect(c *netConf) (*api.Client, context.Context, api.Status, context.CancelFunc, error) {
	cl := api.NewClient(c.Socket)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	st, err := cl.Status(ctx)
	if err != nil {
		cancel()
		return nil, nil, api.Status{}, nil, daemonErr(err)
	}
	return cl, ctx, st, cancel, nil
}

func ipNet(p netip.Prefix) net.IPNet {
	return net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
