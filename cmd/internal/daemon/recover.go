package daemon

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/cmd/internal/monitor"
	"github.com/tapswitch/tapswitch/cmd/internal/state"
	"github.com/tapswitch/tapswitch/fdb"
	"github.com/tapswitch/tapswitch/netns"
)

// finishIntentsLocked settles the operations a crash interrupted, before
// the pods of st are re-attached: an add that reached the state file is
// complete; one that did not is undone (its TAP deleted, and the namespace
// too when the add created it); a delete is finished. st is updated and
// saved before each intent record is removed, so a crash in here leaves
// the records for the next start.
func (d *Daemon) finishIntentsLocked(st *state.State) error {
	ins, err := d.store.Intents()
	if err != nil {
		return err
	}
	for _, in := range ins {
		idx := -1
		for i := range st.Pods {
			if st.Pods[i].Name == in.Pod.Name {
				idx = i
			}
		}
		name := in.Pod.Name
		switch {
		case in.Op == state.IntentAdd && idx >= 0:
			d.log.Info("interrupted pod add had completed; keeping the pod", zap.String("pod", name))
		case in.Op == state.IntentAdd:
			if err := d.undoAdd(in); err != nil {
				return fmt.Errorf("pod %q: undoing an add interrupted by a crash: %w", name, err)
			}
			d.log.Warn("interrupted pod add undone", zap.String("pod", name), zap.String("netns", in.Pod.Netns),
				zap.Bool("netns_deleted", !in.NetnsExisted))
		default: // IntentDel
			rec := in.Pod
			if idx >= 0 {
				rec = st.Pods[idx]
			}
			p := &pod{rec: rec}
			if p.rec.IfName == "" {
				p.rec.IfName = podIfName
			}
			if err := d.deleteOwned(p); err != nil {
				return fmt.Errorf("pod %q: finishing a delete interrupted by a crash: %w", name, err)
			}
			if idx >= 0 {
				st.Pods = append(st.Pods[:idx], st.Pods[idx+1:]...)
				if err := d.store.Save(st); err != nil {
					return err
				}
			}
			d.log.Warn("interrupted pod delete finished", zap.String("pod", name), zap.String("netns", rec.Netns))
		}
		if err := d.store.Done(name); err != nil {
			return err
		}
	}
	return nil
}

// undoAdd removes what an interrupted add made. The add checked that the
// namespace had no link of the pod's ifname before its first change, so a
// TAP of that name that is unmarked or marked as this pod is the add's.
func (d *Daemon) undoAdd(in state.Intent) error {
	p := &pod{rec: in.Pod}
	if p.rec.IfName == "" {
		p.rec.IfName = podIfName
	}
	path, named := netnsPathOf(p.rec.Netns)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil // the crash came before the namespace was made, or it is gone
	}
	if err := p.sameNetns(); errors.Is(err, errNetnsGone) {
		return nil
	}
	if !in.NetnsExisted && named {
		// The add made the namespace; the loopback's mark says so unless
		// the crash came first. A namespace another owner marked is left.
		var lo string
		netns.FromPath(path).Run(func() error {
			if l, err := netlink.LinkByName("lo"); err == nil {
				lo = ownerOf(l)
			}
			return nil
		})

		if lo == "" || lo == d.instance {
			return netns.DeleteNamed(filepath.Base(path))
		}
	}
	return netns.FromPath(path).Run(func() error {
		l, err := netlink.LinkByName(p.rec.IfName)
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, ok := l.(*netlink.Tuntap); !ok {
			return nil
		}
		if m, ok := parseMark(l.Attrs().Alias); ok && (m.instance != d.instance || m.fields["pod"] != p.rec.Name) {
			return nil
		}
		return netlink.LinkDel(l)
	})

}

// netnsPathOf is the path of a pod's namespace field (a name or a path),
// and whether it is a named namespace tapswitch may create and delete.
func netnsPathOf(ns string) (string, bool) {
	n, err := netns.Parse(ns)
	if err != nil { // no record holds such a name: nothing to create or delete
		return netns.PathOf(ns), false
	}
	return n.Path(), n.Name() != ""
}

// errForeign refuses to delete what another daemon instance marked.
var errForeign = errors.New("marked by another tapswitch daemon")

// checkOwned refuses a pod whose TAP carries another instance's mark (or
// this instance's mark for another pod): never delete what is not ours.
// An unmarked TAP is accepted (an older version made it, and the state
// file says it is this daemon's pod).
func (d *Daemon) checkOwned(p *pod) error {
	path, _ := netnsPathOf(p.rec.Netns)
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	if err := p.sameNetns(); err != nil {
		return nil // deleteTAP handles gone and replaced namespaces
	}
	var foreign string
	netns.FromPath(path).Run(func() error {
		l, err := netlink.LinkByName(p.rec.IfName)
		if err != nil {
			return nil
		}
		if m, ok := parseMark(l.Attrs().Alias); ok && (m.instance != d.instance || m.fields["pod"] != p.rec.Name) {
			foreign = l.Attrs().Alias
		}
		return nil
	})

	if foreign != "" {
		return conflict("pod %q: netns %q: %s is %s (%q), not this daemon's (%s); not deleting it", p.rec.Name, p.rec.Netns, p.rec.IfName, errForeign, foreign, d.mark())
	}
	return nil
}

// deleteOwned is deleteTAP of a pod whose TAP is this daemon's; one
// another instance marked is left to it (logged), which is no error.
func (d *Daemon) deleteOwned(p *pod) error {
	if err := d.checkOwned(p); err != nil {
		d.log.Warn("pod's TAP left to its owner", zap.String("pod", p.rec.Name), zap.Error(err))
		return nil
	}
	return p.deleteTAP()
}

// markPod marks a new pod's TAP, and the namespace when the daemon made it.
func (d *Daemon) markPod(p *pod) error {
	path, _ := netnsPathOf(p.rec.Netns)
	return netns.FromPath(path).Run(func() error {
		if err := setAlias(p.rec.IfName, d.podMark(p)); err != nil {
			return err
		}
		if p.rec.NetnsCreated {
			return setAlias("lo", fmt.Sprintf("%s pod=%s netns=created", d.mark(), p.rec.Name))
		}
		return nil
	})

}

// adoptLocked finds the pods this instance marked that st does not list
// (a lost, emptied or older state file) in the named namespaces, and adds
// their records to st, logging each: they are re-attached like the rest.
// Pods in namespaces known only by a /proc path are not found this way.
func (d *Daemon) adoptLocked(st *state.State) int {
	known := make(map[string]bool)
	for _, r := range st.Pods {
		known[r.Name] = true
	}
	ents, err := os.ReadDir(netns.Dir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			d.log.Warn("adopting pods: cannot list namespaces", zap.String("dir", netns.Dir), zap.Error(err))
		}
		return 0
	}
	adopted := 0
	for _, e := range ents {
		nsName := e.Name()
		path := netns.PathOf(nsName)
		if _, err := netns.FromPath(path).ID(); err != nil {
			continue // a stale file, not a namespace
		}
		var recs []state.Pod
		err := netns.FromPath(path).Run(func() error {
			links, err := netlink.LinkList()
			if err != nil {
				return err
			}
			for _, l := range links {
				m, ok := parseMark(l.Attrs().Alias)
				if !ok || m.instance != d.instance || m.fields["pod"] == "" {
					continue
				}
				if _, isTap := l.(*netlink.Tuntap); !isTap {
					continue
				}
				rec, err := recordFromLink(l, m)
				if err != nil {
					d.log.Warn("marked TAP not adopted", zap.String("netns", nsName), zap.String("link", l.Attrs().Name), zap.Error(err))
					continue
				}
				recs = append(recs, rec)
			}
			return nil
		})

		if err != nil {
			d.log.Warn("adopting pods: cannot read a namespace", zap.String("netns", nsName), zap.Error(err))
			continue
		}
		for _, rec := range recs {
			if rec.Netns == "" {
				rec.Netns = nsName
			} else {
				rec.Netns = path
				if id, err := netns.FromPath(path).ID(); err == nil {
					rec.NetnsInode = id.Ino
				}
			}
			if known[rec.Name] {
				if !sameRecord(st, rec) {
					d.log.Warn("marked TAP not adopted: the state file has a pod of that name elsewhere",
						zap.String("pod", rec.Name), zap.String("netns", nsName))
				}
				continue
			}
			rec.Queues = d.cfg.Queues
			known[rec.Name] = true
			st.Pods = append(st.Pods, rec)
			adopted++
			d.log.Info("pod adopted from its mark (not in the state file)", zap.String("pod", rec.Name),
				zap.String("netns", rec.Netns), zap.String("ip", rec.IP), zap.Uint16("vlan", rec.VLAN),
				zap.Bool("netns_created", rec.NetnsCreated), zap.String("container_id", rec.ContainerID))
		}
	}
	return adopted
}

func sameRecord(st *state.State, rec state.Pod) bool {
	for _, r := range st.Pods {
		if r.Name == rec.Name {
			a, _ := netnsPathOf(r.Netns)
			b, _ := netnsPathOf(rec.Netns)
			return a == b
		}
	}
	return false
}

// recordFromLink rebuilds a pod's state record from its marked TAP: the
// name, VLAN and namespace kind from the mark, the address and MAC from
// the link. Netns is "" for a namespace known by name, "path" for one
// attached by path (the caller fills both in).
func recordFromLink(l netlink.Link, m parsedMark) (state.Pod, error) {
	name := m.fields["pod"]
	if err := ValidName(name); err != nil {
		return state.Pod{}, err
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return state.Pod{}, err
	}
	// The pod's addresses are the ones the daemon gave it: its IPv4 one and,
	// on a dual-stack node, one global IPv6 one (the kernel's own link-local
	// address is not the pod's to claim).
	var ip, ip6 netip.Prefix
	for _, a := range addrs {
		if a.IPNet == nil {
			continue
		}
		addr, ok := netip.AddrFromSlice(a.IPNet.IP)
		if !ok {
			continue
		}
		addr = addr.Unmap()
		ones, _ := a.IPNet.Mask.Size()
		switch {
		case addr.Is4() && !ip.IsValid():
			ip = netip.PrefixFrom(addr, ones)
		case addr.Is6() && !addr.IsLinkLocalUnicast() && !ip6.IsValid():
			ip6 = netip.PrefixFrom(addr, ones)
		}
	}
	if !ip.IsValid() {
		return state.Pod{}, errors.New("no IPv4 address on the TAP")
	}
	rec := state.Pod{
		Name: name, IfName: l.Attrs().Name, IP: ip.String(), MAC: fdb.MACFrom(l.Attrs().HardwareAddr).String(),
		VLAN: m.vlan(), NetnsCreated: m.fields["netns"] == "created", Created: time.Now().UTC(),
		ContainerID: m.fields["cid"], Network: m.fields["net"],
	}
	if ip6.IsValid() {
		rec.IPs = []string{ip.String(), ip6.String()}
	}
	if m.fields["netns"] == "path" {
		rec.Netns = "path"
	}
	return rec, nil
}

// claim checks, before a pod of the state file is re-attached, that its
// TAP is not another instance's (a copied state directory, or a namespace
// reused by another daemon), and marks a TAP an older version left
// unmarked, so that a later loss of the state file finds it.
func (d *Daemon) claim(p *pod) error {
	path, _ := netnsPathOf(p.rec.Netns)
	var foreign string
	err := netns.FromPath(path).Run(func() error {
		l, err := netlink.LinkByName(p.rec.IfName)
		if err != nil {
			return nil
		}
		alias := l.Attrs().Alias
		if m, ok := parseMark(alias); ok && (m.instance != d.instance || m.fields["pod"] != p.rec.Name) {
			foreign = alias
			return nil
		}
		if alias == "" {
			return setAlias(p.rec.IfName, d.podMark(p))
		}
		return nil
	})

	if foreign != "" {
		return fmt.Errorf("netns %q: %s is %s (%q), not this daemon's (%s)", p.rec.Netns, p.rec.IfName, errForeign, foreign, d.mark())
	}
	if err != nil {
		return fmt.Errorf("netns %q: %w", p.rec.Netns, err)
	}
	return nil
}

// forgetLocked drops a pod whose TAP another daemon instance marked from
// the switch and the state file, leaving the TAP and its namespace as
// they are: they are not this daemon's to delete.
func (d *Daemon) forgetLocked(p *pod, why error) error {
	if p.link != nil {
		d.portEvent(monitor.PortRemoved, p.rec.Name, p.link.id, api.KindPod, "")
		d.sw.RemovePort(p.link.id)
		p.link.stop()
		p.link = nil
	}
	delete(d.pods, p.rec.Name)
	if err := d.saveLocked(); err != nil {
		return err
	}
	d.log.Warn("pod forgotten, its TAP left to its owner", zap.String("pod", p.rec.Name), zap.Error(why))
	return nil
}
