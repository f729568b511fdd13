package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/netns"
	"github.com/tapswitch/tapswitch/tap"
)

// MaxContainerID bounds a CNI container ID or network name; runtimes use 64
// hex characters or a UUID.
const MaxContainerID = 256

// attachment is where a pod's TAP goes: the named namespace PREFIX+name
// (netns empty), or an existing namespace the container runtime made and
// owns (the CNI plugin's pods), which the daemon never deletes.
type attachment struct {
	netns       string // a path; "" for the named namespace
	netnsIno    uint64 // its nsfs inode when checked
	ifName      string
	containerID string
	network     string
}

// errNetnsGone says a path-attached pod's namespace is no longer there (or
// the path now names another namespace): its TAP went with it.
var errNetnsGone = errors.New("netns gone")

// checkAttachmentLocked validates the CNI fields of s. A gone pod holding
// the container or namespace is added to sp's reclaim list.
func (d *Daemon) checkAttachmentLocked(s api.PodSpec, sp *spec) (attachment, error) {
	a := attachment{ifName: podIfName, containerID: s.ContainerID, network: s.Network}
	if s.IfName != "" {
		if err := netns.CheckIfName(s.IfName); err != nil {
			return a, invalid("pod %q: ifname %q: %v", s.Name, s.IfName, err)
		}
		a.ifName = s.IfName
	}
	if s.ContainerID != "" && !validCNIName(s.ContainerID) {
		return a, invalid("pod %q: container_id %q: want letters, digits, '_', '.' and '-', starting with a letter or digit, at most %d", s.Name, s.ContainerID, MaxContainerID)
	}
	if s.Network != "" && !validCNIName(s.Network) {
		return a, invalid("pod %q: network %q: want letters, digits, '_', '.' and '-', starting with a letter or digit, at most %d", s.Name, s.Network, MaxContainerID)
	}
	if s.NetNS != "" {
		if !filepath.IsAbs(s.NetNS) {
			return a, invalid("pod %q: netns %q: want an absolute path", s.Name, s.NetNS)
		}
		ns, err := netns.Parse(s.NetNS)
		if err != nil {
			return a, invalid("pod %q: %v", s.Name, err)
		}
		id, err := ns.ID()
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return a, invalid("pod %q: netns %q: no such namespace", s.Name, s.NetNS)
		case errors.Is(err, netns.ErrNotNetNS):
			return a, invalid("pod %q: netns %q: not a namespace", s.Name, s.NetNS)
		case errors.Is(err, fs.ErrPermission):
			// Another process's namespace the daemon may not open (its
			// /proc entry is protected): the caller named the wrong one.
			return a, invalid("pod %q: netns %q: the daemon may not open it (%v)", s.Name, s.NetNS, errors.Unwrap(err))
		case err != nil:
			return a, fmt.Errorf("pod %q: %w", s.Name, err)
		}
		if own, err := netns.Self().ID(); err == nil && own == id {
			return a, invalid("pod %q: netns %q: is the daemon's own namespace", s.Name, s.NetNS)
		}
		a.netns, a.netnsIno = ns.Path(), id.Ino
	}
	for _, name := range d.podNamesLocked() {
		p := d.pods[name]
		o := p.rec
		if o.IfName != a.ifName {
			continue
		}
		var what string
		switch {
		case a.containerID != "" && o.ContainerID == a.containerID:
			what = fmt.Sprintf("container %s ifname %s", a.containerID, a.ifName)
		case a.netnsIno != 0 && o.NetnsInode == a.netnsIno:
			// A gone pod's namespace inode may be a new namespace's now.
			what = fmt.Sprintf("netns %q ifname %s", a.netns, a.ifName)
		default:
			continue
		}
		if p.link == nil {
			sp.reclaimGone(p, what)
			continue
		}
		return a, conflict("pod %q: %s: already attached as %s; %s", s.Name, what, p.holder(), p.frees())
	}
	return a, nil
}

// sameNetns checks that a path-attached pod's path still names the
// namespace it was added in; errNetnsGone if not.
func (p *pod) sameNetns() error {
	if p.rec.NetnsInode == 0 {
		return nil
	}
	id, err := netns.FromPath(p.rec.Netns).ID()
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, netns.ErrNotNetNS):
		return fmt.Errorf("netns %q: %w", p.rec.Netns, errNetnsGone)
	case err != nil:
		return err
	case id.Ino != p.rec.NetnsInode:
		return fmt.Errorf("netns %q: now another namespace: %w", p.rec.Netns, errNetnsGone)
	}
	return nil
}

// deleteTAP deletes the pod's TAP, and its namespace when the daemon made
// it. A runtime's namespace that is gone took the TAP with it; one whose path
// now names another namespace is not entered.
func (p *pod) deleteTAP() error {
	if err := p.sameNetns(); errors.Is(err, errNetnsGone) {
		return nil
	} else if err != nil {
		return fmt.Errorf("pod %q: %w", p.rec.Name, err)
	}
	return tap.DeletePod(p.tapConfig(), p.rec.NetnsCreated)
}

// validCNIName checks a container ID or network name as the CNI spec
// words it: alphanumerics, then also '_', '.' and '-'.
func validCNIName(s string) bool {
	if s == "" || len(s) > MaxContainerID {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return false
		}
	}
	return true
}
