package daemon

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/tapswitch/tapswitch/cmd/internal/hostnat"
	"github.com/tapswitch/tapswitch/cmd/internal/state"
)

// Ownership marks. Everything the daemon makes on the host carries the
// instance ID kept in its state directory (state.Store.Instance):
//
//   - the gateway TAP's alias (ifalias): "tapswitch:ID"
//   - a pod's TAP's alias: "tapswitch:ID pod=NAME vlan=N netns=created|named|path
//     [cid=CONTAINER net=NETWORK]", enough to rebuild the pod's state record
//   - the loopback alias in a namespace the daemon created: "tapswitch:ID
//     pod=NAME netns=created"
//   - the nftables table: the comment of each of its rules, "tapswitch:ID"
//
// A daemon deletes, adopts and re-attaches only what carries its own ID
// (or no mark at all where its state file says it made the thing, as an
// older version left it), and refuses to start over a gateway TAP or a
// table another instance marked.
const markPrefix = "tapswitch:"

// mark is the daemon's own mark.
func (d *Daemon) mark() string { return markPrefix + d.instance }

// podMark is the alias of a pod's TAP.
func (d *Daemon) podMark(p *pod) string {
	ns := "named"
	if _, named := netnsPathOf(p.rec.Netns); p.rec.NetnsCreated {
		ns = "created"
	} else if !named || p.rec.NetnsInode != 0 {
		ns = "path"
	}
	s := fmt.Sprintf("%s pod=%s vlan=%d netns=%s", d.mark(), p.rec.Name, p.rec.VLAN, ns)
	if p.rec.ContainerID != "" {
		ext := s + " cid=" + p.rec.ContainerID
		if p.rec.Network != "" {
			ext += " net=" + p.rec.Network
		}
		if len(ext) < maxAlias {
			s = ext
		}
	}
	return s
}

// maxAlias is IFALIASZ less its NUL.
const maxAlias = 255

// parsedMark is a mark read back.
type parsedMark struct {
	instance string
	fields   map[string]string
}

// parseMark reads an alias; ok is false when it is not a tapswitch mark.
func parseMark(alias string) (m parsedMark, ok bool) {
	rest, found := strings.CutPrefix(alias, markPrefix)
	if !found {
		return m, false
	}
	words := strings.Fields(rest)
	if len(words) == 0 || !state.ValidInstance(words[0]) {
		return m, false
	}
	m.instance = words[0]
	m.fields = make(map[string]string)
	for _, w := range words[1:] {
		k, v, found := strings.Cut(w, "=")
		if !found || k == "" {
			return parsedMark{}, false
		}
		m.fields[k] = v
	}
	return m, true
}

// vlan is the mark's VLAN, or the default one.
func (m parsedMark) vlan() uint16 {
	v, err := strconv.ParseUint(m.fields["vlan"], 10, 16)
	if err != nil || v == 0 || v > 4094 {
		return 1
	}
	return uint16(v)
}

// ownerOf names whose a link is by its alias: "" for no tapswitch mark.
func ownerOf(l netlink.Link) string {
	m, ok := parseMark(l.Attrs().Alias)
	if !ok {
		return ""
	}
	return m.instance
}

// setAlias marks the link named name in the calling thread's namespace.
func setAlias(name, alias string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("tap %q: %w", name, err)
	}
	if l.Attrs().Alias == alias {
		return nil
	}
	if err := netlink.LinkSetAlias(l, alias); err != nil {
		return fmt.Errorf("tap %q: alias %q: %w", name, alias, err)
	}
	return nil
}

// preflightLocked makes every single-instance check that Start's changes
// depend on, before the first of them: a gateway TAP that another daemon
// holds open or that another instance marked, and an nftables table of
// the configured name that is not this instance's. It changes nothing.
// (The control socket and the state lock are checked before it.)
func (d *Daemon) preflightLocked() error {
	name := d.cfg.Gateway.Interface
	l, err := netlink.LinkByName(name)
	var nf netlink.LinkNotFoundError
	switch {
	case errors.As(err, &nf):
	case err != nil:
		return fmt.Errorf("gateway %q: %w", name, err)
	default:
		tt, ok := l.(*netlink.Tuntap)
		if !ok {
			return fmt.Errorf("gateway %q: a %s of that name exists, not a TAP; tapswitch will not take it over", name, l.Type())
		}
		if o := ownerOf(l); o != "" && o != d.instance {
			return fmt.Errorf("gateway %q: belongs to another tapswitch daemon (instance %s; this one is %s, state dir %s): give this daemon another gateway.interface, or stop that daemon (`ip link del %s` if none runs)",
				name, o, d.instance, d.cfg.StateDir, name)
		}
		if n := tt.Queues + tt.DisabledQueues; n > 0 {
			return fmt.Errorf("gateway %q: held open by another process (%d queues attached; another tapswitch daemon on another state_dir?); this one will not share it", name, n)
		}
	}
	if nc := d.natConfig(); !nc.Empty() {
		exists, owner, err := hostnat.TableOwner(nc.Table)
		if err != nil {
			return fmt.Errorf("nat: %w", err)
		}
		switch {
		case !exists || owner == d.mark():
		case owner == "":
			return fmt.Errorf("nat: nftables table inet %q exists and carries no tapswitch mark (another tool's, or an older tapswitch's): set nat.table to another name, or delete it (`nft delete table inet %s`) if it is a leftover", nc.Table, nc.Table)
		default:
			return fmt.Errorf("nat: nftables table inet %q belongs to another tapswitch daemon (%s; this one is %s): set nat.table to another name, or stop that daemon (`nft delete table inet %s` if none runs)", nc.Table, owner, d.mark(), nc.Table)
		}
	}
	return nil
}
