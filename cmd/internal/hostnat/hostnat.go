// Package hostnat keeps the node's NAT rules that tapswitch needs in one
// nftables table of its own (family inet): the masquerade that lets
// same-node pod -> Service -> pod connections pass conntrack in both
// directions, and the optional masquerade of pod traffic leaving the
// cluster. It never reads or changes any other table.
//
// Why the Service rule exists: kube-proxy DNATs a pod's connection to a
// Service in the host namespace. When the backend is a pod behind the same
// switch, the host sends the DNATed packet back out of the gateway TAP, and
// the backend's reply is addressed to the client, in the same subnet: the
// switch delivers it straight to the client, which sees the backend's
// address instead of the Service's and resets the connection. A Linux
// bridge avoids this only through br_netfilter, which runs bridged frames
// through conntrack. Masquerading exactly those connections (DNATed, from
// the pod subnet, leaving through the gateway TAP) makes the backend reply
// to the gateway, so the reply crosses the host and is un-NATed.
package hostnat

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ipsDstNAT is IPS_DST_NAT of the conntrack status (`ct status dnat`).
const ipsDstNAT = 1 << 5

// Config says which rules to keep.
type Config struct {
	// Table is the nftables table's name, in family inet.
	Table string
	// Gateway is the gateway TAP's name.
	Gateway string
	// Subnet is the node's pod subnet.
	Subnet netip.Prefix
	// ServiceMasquerade masquerades connections the host DNATed from the
	// pod subnet back out of the gateway (same-node Service traffic):
	//   oifname GW ip saddr SUBNET ct status dnat masquerade
	ServiceMasquerade bool
	// ClusterCIDR, when valid, masquerades pod traffic to destinations
	// outside it that leaves through another interface than the gateway:
	//   oifname != GW ip saddr SUBNET ip daddr != CLUSTER masquerade
	ClusterCIDR netip.Prefix
	// Owner, when set, is written as the comment of every rule (`nft list`
	// shows it), so that a daemon tells its own table from another's
	// (TableOwner).
	Owner string
}

// Empty reports whether cfg asks for no rule at all, so that no table is
// needed.
func (cfg Config) Empty() bool { return !cfg.ServiceMasquerade && !cfg.ClusterCIDR.IsValid() }

func (cfg Config) check() error {
	switch {
	case cfg.Table == "":
		return errors.New("table: must not be empty")
	case cfg.Gateway == "" || len(cfg.Gateway) > 15:
		return fmt.Errorf("gateway interface %q: want 1-15 characters", cfg.Gateway)
	case !cfg.Subnet.IsValid() || !cfg.Subnet.Addr().Is4():
		return fmt.Errorf("subnet %s: want an IPv4 prefix", cfg.Subnet)
	case cfg.ClusterCIDR.IsValid() && !cfg.ClusterCIDR.Addr().Is4():
		return fmt.Errorf("cluster CIDR %s: want an IPv4 prefix", cfg.ClusterCIDR)
	}
	return nil
}

// Rules is an installed table, bound to the network namespace it was
// installed in: Remove works from any thread.
type Rules struct {
	cfg  Config
	mu   sync.Mutex
	ns   netns.NsHandle // closed by Remove
	done bool
}

// Install creates (or replaces, in one transaction, so a restart after a
// crash finds no leftovers) the table in the calling thread's network
// namespace.
func Install(cfg Config) (*Rules, error) {
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("nftables table inet %q: %w", cfg.Table, err)
	}
	// The namespace of this thread, held for Remove. Locked so that the
	// handle and the first connection see the same namespace.
	runtime.LockOSThread()
	ns, err := netns.Get()
	runtime.UnlockOSThread()
	if err != nil {
		return nil, fmt.Errorf("nftables table inet %q: netns of this thread: %w", cfg.Table, err)
	}
	r := &Rules{cfg: cfg, ns: ns}
	if err := r.apply(true); err != nil {
		ns.Close()
		return nil, err
	}
	return r, nil
}

// Config is what r installed.
func (r *Rules) Config() Config { return r.cfg }

// Remove deletes the table. Calling it again does nothing.
func (r *Rules) Remove() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return nil
	}
	r.done = true
	defer r.ns.Close()
	return r.apply(false)
}

func (r *Rules) apply(install bool) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(r.ns)))
	if err != nil {
		return fmt.Errorf("nftables table inet %q: %w", r.cfg.Table, err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: r.cfg.Table}
	// Adding first makes the delete valid when the table is missing; the
	// kernel applies the batch as one transaction.
	c.AddTable(t)
	c.DelTable(t)
	if install {
		c.AddTable(t)
		ch := c.AddChain(&nftables.Chain{
			Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource,
		})
		for _, e := range r.cfg.rules() {
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: e, UserData: comment(r.cfg.Owner)})
		}
	}
	if err := c.Flush(); err != nil {
		verb := "install"
		if !install {
			verb = "delete"
		}
		return fmt.Errorf("nftables table inet %q: %s: %w", r.cfg.Table, verb, err)
	}
	return nil
}

func (cfg Config) rules() [][]expr.Any {
	var out [][]expr.Any
	if cfg.ServiceMasquerade {
		e := ipv4()
		e = append(e, oifName(cfg.Gateway, expr.CmpOpEq)...)
		e = append(e, inPrefix(12, cfg.Subnet, expr.CmpOpEq)...)
		e = append(e,
			&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT), Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
			&expr.Counter{},
			&expr.Masq{},
		)
		out = append(out, e)
	}
	if cfg.ClusterCIDR.IsValid() {
		e := ipv4()
		e = append(e, oifName(cfg.Gateway, expr.CmpOpNeq)...)
		e = append(e, inPrefix(12, cfg.Subnet, expr.CmpOpEq)...)
		e = append(e, inPrefix(16, cfg.ClusterCIDR, expr.CmpOpNeq)...)
		e = append(e, &expr.Counter{}, &expr.Masq{})
		out = append(out, e)
	}
	return out
}

// ipv4 matches IPv4 packets (the table is inet).
func ipv4() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
	}
}

func oifName(name string, op expr.CmpOp) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: b},
	}
}

// inPrefix compares the IPv4 address at offset off of the network header
// (12 source, 16 destination) with p.
func inPrefix(off uint32, p netip.Prefix, op expr.CmpOp) []expr.Any {
	p = p.Masked()
	m := make([]byte, 4)
	for i := 0; i < p.Bits(); i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	a := p.Addr().As4()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: m, Xor: make([]byte, 4)},
		&expr.Cmp{Op: op, Register: 1, Data: a[:]},
	}
}

// Exists reports whether table inet name exists in the calling thread's
// network namespace.
func Exists(name string) (bool, error) {
	c, err := nftables.New()
	if err != nil {
		return false, err
	}
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("nftables: list inet tables: %w", err)
	}
	for _, t := range ts {
		if t.Name == name {
			return true, nil
		}
	}
	return false, nil
}

// udataComment is NFTNL_UDATA_RULE_COMMENT, the type of a rule comment in
// the TLVs of its user data, as nft writes and reads it.
const udataComment = 0

// comment is s as a rule's user data: one TLV, the string with its NUL.
func comment(s string) []byte {
	if s == "" || len(s) > 254 {
		return nil
	}
	b := []byte{udataComment, byte(len(s) + 1)}
	b = append(b, s...)
	return append(b, 0)
}

// parseComment finds the comment in a rule's user data.
func parseComment(b []byte) string {
	for len(b) >= 2 {
		t, n := b[0], int(b[1])
		if len(b) < 2+n {
			return ""
		}
		if t == udataComment {
			v := b[2 : 2+n]
			for len(v) > 0 && v[len(v)-1] == 0 {
				v = v[:len(v)-1]
			}
			return string(v)
		}
		b = b[2+n:]
	}
	return ""
}

// TableOwner reports whether table inet name exists in the calling
// thread's network namespace and the owner its rules carry ("" for a
// table with no rule or no comment: not made by this version of
// tapswitch, or not by tapswitch at all).
func TableOwner(name string) (exists bool, owner string, err error) {
	c, err := nftables.New()
	if err != nil {
		return false, "", err
	}
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, "", fmt.Errorf("nftables: list inet tables: %w", err)
	}
	var t *nftables.Table
	for _, x := range ts {
		if x.Name == name {
			t = x
		}
	}
	if t == nil {
		return false, "", nil
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return true, "", fmt.Errorf("nftables table inet %q: list chains: %w", name, err)
	}
	for _, ch := range chains {
		if ch.Table.Name != name {
			continue
		}
		rules, err := c.GetRules(t, ch)
		if err != nil {
			return true, "", fmt.Errorf("nftables table inet %q: chain %q: %w", name, ch.Name, err)
		}
		for _, r := range rules {
			if o := parseComment(r.UserData); o != "" {
				return true, o, nil
			}
		}
	}
	return true, "", nil
}
