// Package config reads the daemon's YAML configuration: the embedded default
// with an operator's file laid over it, checked key by key.
package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tapswitch/tapswitch/cmd/internal/logging"
	"github.com/tapswitch/tapswitch/fdb"
	"github.com/tapswitch/tapswitch/netns"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML is the built-in configuration, comments included.
func DefaultYAML() []byte { return append([]byte(nil), defaultYAML...) }

// Config is the daemon's configuration. Field names follow the YAML keys.
type Config struct {
	Switch           Switch        `yaml:"switch"`
	Subnet           string        `yaml:"subnet"`
	SubnetV6         string        `yaml:"subnet_v6"`
	Gateway          Gateway       `yaml:"gateway"`
	FDB              FDB           `yaml:"fdb"`
	ARP              ARP           `yaml:"arp"`
	Queues           int           `yaml:"queues"`
	Batch            int           `yaml:"batch"`
	Spin             time.Duration `yaml:"spin"`
	SpinCPU          int           `yaml:"spin_cpu"`
	Nice             int           `yaml:"nice"`
	TxQueueLen       int           `yaml:"tx_queue_len"`
	RxPPS            int           `yaml:"rx_pps"`
	NetnsPrefix      string        `yaml:"netns_prefix"`
	Socket           string        `yaml:"socket"`
	SocketGroup      string        `yaml:"socket_group"`
	StateDir         string        `yaml:"state_dir"`
	LogLevel         string        `yaml:"log_level"`
	RemovePodsOnExit bool          `yaml:"remove_pods_on_exit"`
	Pods             []PodSpec     `yaml:"pods"`
	Metrics          Metrics       `yaml:"metrics"`
	NAT              NAT           `yaml:"nat"`
}

// NAT sets the host NAT rules the daemon keeps in its own nftables table
// (family inet) in the namespace it runs in (package hostnat).
type NAT struct {
	// Table is the nftables table's name (family inet).
	Table string `yaml:"table"`
	// ServiceMasquerade masquerades connections the host DNATed (kube-proxy)
	// from the pod subnet back out of the gateway, so that same-node
	// pod -> Service -> pod replies pass conntrack.
	ServiceMasquerade bool `yaml:"service_masquerade"`
	// Masquerade is the node's masquerade of pod traffic leaving the cluster.
	Masquerade Masquerade `yaml:"masquerade"`
}

// Masquerade masquerades pod traffic to destinations outside ClusterCIDR.
type Masquerade struct {
	Enabled     bool   `yaml:"enabled"`
	ClusterCIDR string `yaml:"cluster_cidr"`
}

// Metrics sets the optional Prometheus listener.
type Metrics struct {
	// Listen is a TCP host:port serving /metrics; empty serves nothing.
	Listen string `yaml:"listen"`
}

// Switch names the switch and sets the ports' MTU.
type Switch struct {
	Name string `yaml:"name"`
	MTU  int    `yaml:"mtu"`
	// StormPPS limits the broadcast, multicast and unknown-unicast frames
	// per second each pod may send into the switch; 0 means no limit.
	StormPPS int `yaml:"storm_pps"`
	// LockPodMAC lets each pod send only from the MAC the daemon gave it
	// (port security): other sources are dropped as src-lock before they
	// are learned or flooded.
	LockPodMAC bool `yaml:"lock_pod_mac"`
}

// Gateway is the TAP in the host namespace that holds the subnet's gateway
// address, as cbr0 did.
type Gateway struct {
	Address   string `yaml:"address"`
	AddressV6 string `yaml:"address_v6"`
	Interface string `yaml:"interface"`
	MAC       string `yaml:"mac"`
}

// FDB sets the forwarding table's ageing, limits and policy.
type FDB struct {
	Ageing    time.Duration `yaml:"ageing"`
	Limit     int           `yaml:"limit"`
	PortLimit int           `yaml:"port_limit"`
	Policy    string        `yaml:"policy"`
}

// ARP sets suppression and the spoofing guard, for ARP and IPv6 neighbour
// discovery alike, and whether pods may send router advertisements.
type ARP struct {
	Suppress bool          `yaml:"suppress"`
	Guard    bool          `yaml:"guard"`
	Ageing   time.Duration `yaml:"ageing"`
	// PodRouterAdvertisements lets IPv6 router advertisements and
	// redirects from pods reach the other pods.
	PodRouterAdvertisements bool `yaml:"pod_router_advertisements"`
}

// PodSpec is a static pod, created at start when missing.
type PodSpec struct {
	Name string   `yaml:"name"`
	IP   string   `yaml:"ip"`
	IPs  []string `yaml:"ips,omitempty"` // a dual-stack pod's IPv6 address
	MAC  string   `yaml:"mac"`
	VLAN uint16   `yaml:"vlan"`
}

// Limits on the knobs that size memory: every queue has a reader whose
// arena holds a 64 KiB frame or batch MTU-sized frames (tap.ArenaSize).
const (
	MaxQueues = 16
	MaxBatch  = 64
)

// Isolated is the default configuration of a daemon that leaves the host
// alone: its own subnet, gateway TAP and namespace prefix, its state and
// socket under dir (short: a unix socket path holds at most 108 bytes),
// warnings only, and no nftables rules (they would go into the host's own
// firewall). Tests and the real-dataplane simulator run such daemons.
func Isolated(name, dir, prefix, subnet, gateway, gwIf string) Config {
	cfg := Default()
	cfg.Switch.Name = name
	cfg.Subnet = subnet
	cfg.Gateway = Gateway{Address: gateway, Interface: gwIf}
	cfg.NetnsPrefix = prefix
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.Socket = filepath.Join(dir, "sock")
	cfg.LogLevel = "warn"
	cfg.NAT.ServiceMasquerade = false
	cfg.NAT.Masquerade.Enabled = false
	return cfg
}

// Default returns the embedded configuration.
func Default() Config {
	c, err := parse(defaultYAML, "built-in default")
	if err != nil {
		panic(err) // the embedded file is part of the program
	}
	return c
}

// Load reads path over the default; an empty path means the default alone.
func Load(path string) (Config, error) {
	if path == "" {
		return Default(), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return Parse(b, path)
}

// Parse reads YAML over the default. name labels errors.
func Parse(b []byte, name string) (Config, error) {
	c := Default()
	if err := decode(b, &c); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", name, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", name, err)
	}
	return c, nil
}

func parse(b []byte, name string) (Config, error) {
	var c Config
	if err := decode(b, &c); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", name, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", name, err)
	}
	return c, nil
}

func decode(b []byte, c *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// Validate names the first bad key.
func (c Config) Validate() error {
	if c.Switch.Name == "" {
		return errors.New("switch.name: must not be empty")
	}
	if c.Switch.StormPPS < 0 {
		return fmt.Errorf("switch.storm_pps %d: must not be negative", c.Switch.StormPPS)
	}
	if c.Switch.MTU < 68 || c.Switch.MTU > 65535 {
		return fmt.Errorf("switch.mtu %d: want 68-65535", c.Switch.MTU)
	}
	sub, err := c.SubnetPrefix()
	if err != nil {
		return err
	}
	gw, err := c.GatewayAddr()
	if err != nil {
		return err
	}
	if !sub.Contains(gw) || gw == sub.Addr() || gw == lastAddr(sub) {
		return fmt.Errorf("gateway.address %q: not a host address in subnet %s", c.Gateway.Address, sub)
	}
	if _, _, err := c.IPv6(); err != nil {
		return err
	}
	if err := netns.CheckIfName(c.Gateway.Interface); err != nil {
		return fmt.Errorf("gateway.interface %q: %w", c.Gateway.Interface, err)
	}
	if c.Gateway.MAC != "" {
		m, err := fdb.ParseMAC(c.Gateway.MAC)
		if err != nil {
			return fmt.Errorf("gateway.mac: %w", err)
		}
		if m.IsMulticast() || m.IsZero() {
			return fmt.Errorf("gateway.mac %q: want a unicast address", c.Gateway.MAC)
		}
	}
	if _, err := c.FDBConfig(); err != nil {
		return err
	}
	if c.ARP.Ageing < 0 {
		return fmt.Errorf("arp.ageing %v: must not be negative", c.ARP.Ageing)
	}
	if c.Queues < 1 || c.Queues > MaxQueues {
		return fmt.Errorf("queues %d: want 1-%d", c.Queues, MaxQueues)
	}
	if c.RxPPS < 0 {
		return fmt.Errorf("rx_pps %d: must not be negative", c.RxPPS)
	}
	if c.TxQueueLen < 0 || c.TxQueueLen > 1<<20 {
		return fmt.Errorf("tx_queue_len %d: want 0-%d", c.TxQueueLen, 1<<20)
	}
	if c.Spin < 0 || c.Spin > time.Millisecond {
		return fmt.Errorf("spin %v: want 0-1ms", c.Spin)
	}
	if c.SpinCPU < -1 {
		// Whether that CPU is one the daemon may run on is known only
		// where it runs: the poller checks it when it starts.
		return fmt.Errorf("spin_cpu %d: want -1 (not pinned) or a CPU number", c.SpinCPU)
	}
	if c.SpinCPU >= 0 && c.Spin == 0 {
		return fmt.Errorf("spin_cpu %d: pins the poller, which runs only with spin > 0 (spin is 0)", c.SpinCPU)
	}
	if c.Nice < -20 || c.Nice > 19 {
		return fmt.Errorf("nice %d: want -20 to 19 (0 leaves the priority alone)", c.Nice)
	}
	if c.Batch < 1 || c.Batch > MaxBatch {
		return fmt.Errorf("batch %d: want 1-%d", c.Batch, MaxBatch)
	}
	if len(c.NetnsPrefix) > 32 {
		return fmt.Errorf("netns_prefix %q: at most 32 characters", c.NetnsPrefix)
	}
	for _, r := range c.NetnsPrefix {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("netns_prefix %q: only letters, digits, '-', '_' and '.'", c.NetnsPrefix)
		}
	}
	if c.Socket == "" {
		return errors.New("socket: must not be empty")
	}
	if g := c.SocketGroup; g != "" && (len(g) > 32 || strings.ContainsAny(g, "/: \t\n")) {
		return fmt.Errorf("socket_group %q: not a group name", g)
	}
	if c.StateDir == "" {
		return errors.New("state_dir: must not be empty")
	}
	if _, err := logging.ParseLevel(c.LogLevel); err != nil {
		return fmt.Errorf("log_level: %w", err)
	}
	if c.Metrics.Listen != "" {
		if _, port, err := net.SplitHostPort(c.Metrics.Listen); err != nil {
			return fmt.Errorf("metrics.listen %q: want host:port (\"127.0.0.1:9469\", \":9469\")", c.Metrics.Listen)
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return fmt.Errorf("metrics.listen %q: port %q: want 0-65535", c.Metrics.Listen, port)
		}
	}
	if err := c.NAT.validate(c.Subnet); err != nil {
		return err
	}
	seen := make(map[string]bool)
	for i, p := range c.Pods {
		if p.Name == "" || p.IP == "" {
			return fmt.Errorf("pods[%d]: name and ip are required", i)
		}
		if seen[p.Name] {
			return fmt.Errorf("pods[%d]: pod %q listed twice", i, p.Name)
		}
		seen[p.Name] = true
	}
	return nil
}

func (n NAT) validate(subnet string) error {
	if n.Table == "" || len(n.Table) > 63 {
		return fmt.Errorf("nat.table %q: want 1-63 characters", n.Table)
	}
	for _, r := range n.Table {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("nat.table %q: only letters, digits, '-' and '_'", n.Table)
		}
	}
	if !n.Masquerade.Enabled {
		return nil
	}
	cc, err := n.ClusterCIDR()
	if err != nil {
		return err
	}
	if sub, err := netip.ParsePrefix(subnet); err == nil && (cc.Bits() > sub.Bits() || !cc.Contains(sub.Addr())) {
		return fmt.Errorf("nat.masquerade.cluster_cidr %q: does not contain the pod subnet %s", n.Masquerade.ClusterCIDR, subnet)
	}
	return nil
}

// ClusterCIDR is nat.masquerade.cluster_cidr; an error when it is missing
// or not an IPv4 CIDR without host bits.
func (n NAT) ClusterCIDR() (netip.Prefix, error) {
	s := n.Masquerade.ClusterCIDR
	if s == "" {
		return netip.Prefix{}, errors.New("nat.masquerade.cluster_cidr: required when nat.masquerade.enabled (every node's pod CIDR, e.g. 10.244.0.0/16)")
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("nat.masquerade.cluster_cidr %q: want an IPv4 CIDR", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("nat.masquerade.cluster_cidr %q: host bits set (did you mean %s?)", s, p.Masked())
	}
	return p, nil
}

// SubnetPrefix is the pod subnet, masked.
func (c Config) SubnetPrefix() (netip.Prefix, error) {
	p, err := netip.ParsePrefix(c.Subnet)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("subnet %q: invalid CIDR", c.Subnet)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("subnet %q: IPv4 only (an IPv6 pod subnet is subnet_v6)", c.Subnet)
	}
	if p.Bits() > 30 || p.Bits() < 8 {
		return netip.Prefix{}, fmt.Errorf("subnet %q: prefix length /%d: want /8 to /30", c.Subnet, p.Bits())
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("subnet %q: host bits set (did you mean %s?)", c.Subnet, p.Masked())
	}
	return p, nil
}

// GatewayAddr is the gateway's address; a CIDR form must carry the subnet's
// prefix length.
func (c Config) GatewayAddr() (netip.Addr, error) {
	s := c.Gateway.Address
	if a, err := netip.ParseAddr(s); err == nil {
		if !a.Is4() {
			return netip.Addr{}, fmt.Errorf("gateway.address %q: IPv4 only", s)
		}
		return a, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("gateway.address %q: invalid address", s)
	}
	if sub, err := c.SubnetPrefix(); err == nil && p.Bits() != sub.Bits() {
		return netip.Addr{}, fmt.Errorf("gateway.address %q: prefix length differs from subnet %s", s, sub)
	}
	return p.Addr(), nil
}

// IPv6 is the optional IPv6 pod subnet (masked) and the gateway's IPv6
// address: both invalid (zero) when subnet_v6 is empty. gateway.address_v6
// defaults to the subnet's first address; a CIDR form must carry the
// subnet's prefix length.
func (c Config) IPv6() (netip.Prefix, netip.Addr, error) {
	if c.SubnetV6 == "" {
		if c.Gateway.AddressV6 != "" {
			return netip.Prefix{}, netip.Addr{}, fmt.Errorf("gateway.address_v6 %q: set without subnet_v6", c.Gateway.AddressV6)
		}
		return netip.Prefix{}, netip.Addr{}, nil
	}
	p, err := netip.ParsePrefix(c.SubnetV6)
	switch {
	case err != nil:
		return netip.Prefix{}, netip.Addr{}, fmt.Errorf("subnet_v6 %q: invalid CIDR", c.SubnetV6)
	case !p.Addr().Is6() || p.Addr().Is4In6():
		return netip.Prefix{}, netip.Addr{}, fmt.Errorf("subnet_v6 %q: not an IPv6 CIDR (the IPv4 pod subnet is subnet)", c.SubnetV6)
	case p.Bits() < 48 || p.Bits() > 124:
		return netip.Prefix{}, netip.Addr{}, fmt.Errorf("subnet_v6 %q: prefix length /%d: want /48 to /124", c.SubnetV6, p.Bits())
	case p.Masked() != p:
		return netip.Prefix{}, netip.Addr{}, fmt.Errorf("subnet_v6 %q: host bits set (did you mean %s?)", c.SubnetV6, p.Masked())
	case p.Addr().IsLinkLocalUnicast() || p.Addr().IsMulticast() || p.Addr().IsLoopback():
		return netip.Prefix{}, netip.Addr{}, fmt.Errorf("subnet_v6 %q: want a global or unique local (fd00::/8) prefix", c.SubnetV6)
	}
	s := c.Gateway.AddressV6
	if s == "" {
		return p, p.Addr().Next(), nil
	}
	gw, err := netip.ParseAddr(s)
	if err != nil {
		gp, perr := netip.ParsePrefix(s)
		if perr != nil {
			return netip.Prefix{}, netip.Addr{}, fmt.Errorf("gateway.address_v6 %q: invalid address", s)
		}
		if gp.Bits() != p.Bits() {
			return netip.Prefix{}, netip.Addr{}, fmt.Errorf("gateway.address_v6 %q: prefix length differs from subnet_v6 %s", s, p)
		}
		gw = gp.Addr()
	}
	if gw.Zone() != "" || !p.Contains(gw) || gw == p.Addr() {
		return netip.Prefix{}, netip.Addr{}, fmt.Errorf("gateway.address_v6 %q: not a host address in subnet_v6 %s", s, p)
	}
	return p, gw, nil
}

// FDBConfig is the fdb section in the table's own terms.
func (c Config) FDBConfig() (fdb.Config, error) {
	pol, err := fdb.ParsePolicy(c.FDB.Policy)
	if err != nil {
		return fdb.Config{}, fmt.Errorf("fdb.policy: %w", err)
	}
	fc := fdb.Config{Ageing: c.FDB.Ageing, Limit: c.FDB.Limit, PortLimit: c.FDB.PortLimit, Policy: pol}
	if err := fc.Validate(); err != nil {
		return fdb.Config{}, fmt.Errorf("fdb: %w", err)
	}
	return fc, nil
}

// Marshal renders c as YAML.
func (c Config) Marshal() ([]byte, error) { return yaml.Marshal(c) }

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
