// Package state keeps what the daemon must remember across a restart, even
// after kill -9: the pods it made and the gateway, in one small JSON file
// replaced atomically (write a temporary file, fsync, rename, fsync the
// directory), so a crash leaves either the old file or the new one.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// FileName is the state file's name inside the state directory.
const FileName = "state.json"

// Version is the format written; Load refuses newer ones.
const Version = 1

// State is the file's content.
type State struct {
	Version  int       `json:"version"`
	Switch   string    `json:"switch"`
	Subnet   string    `json:"subnet"`
	SubnetV6 string    `json:"subnet_v6,omitempty"`
	Gateway  *Gateway  `json:"gateway,omitempty"`
	Pods     []Pod     `json:"pods"`
	Updated  time.Time `json:"updated"`
}

// Gateway is the host-side gateway TAP.
type Gateway struct {
	Interface string `json:"interface"`
	Address   string `json:"address"`              // CIDR
	AddressV6 string `json:"address_v6,omitempty"` // CIDR
	MAC       string `json:"mac"`
}

// Pod is one pod's port: where its TAP lives and what it was given.
type Pod struct {
	Name  string `json:"name"`
	Netns string `json:"netns"`
	// NetnsCreated says the daemon created the namespace, so deleting the
	// pod deletes it too.
	NetnsCreated bool   `json:"netns_created"`
	IfName       string `json:"ifname"` // the TAP's name inside the namespace
	IP           string `json:"ip"`     // CIDR: the IPv4 address
	// IPs are all of the pod's addresses (CIDR), the IPv4 one first, at
	// most one per family. A file written before dual-stack pods has only
	// IP; Addrs reads either.
	IPs     []string  `json:"ips,omitempty"`
	MAC     string    `json:"mac"`
	VLAN    uint16    `json:"vlan"`
	Queues  int       `json:"queues"`
	Static  bool      `json:"static,omitempty"` // from the config file
	Created time.Time `json:"created"`
	// CNI attachments: the namespace's nsfs inode when the pod was added
	// (a /proc/PID/ns/net path may later name another namespace; a pod whose
	// path no longer has this inode is gone, and its TAP went with it), and
	// the runtime's container ID and network name.
	NetnsInode  uint64 `json:"netns_inode,omitempty"`
	ContainerID string `json:"container_id,omitempty"`
	Network     string `json:"network,omitempty"`
}

// Addrs is the pod's addresses: IPs, or IP alone in a file written before
// IPs existed.
func (p Pod) Addrs() []string {
	if len(p.IPs) > 0 {
		return p.IPs
	}
	if p.IP != "" {
		return []string{p.IP}
	}
	return nil
}

// Store is the state file in one directory, locked for one daemon.
type Store struct {
	dir  string
	lock *os.File
}

// LockName is the lock file's name inside the state directory.
const LockName = "lock"

// Open makes dir (mode 0700) if needed and takes its lock, so that two
// daemons never drive the same pods. The kernel drops the lock when its
// holder dies, kill -9 included.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir %q: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, LockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state dir %q: %w", dir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		pid, _ := os.ReadFile(f.Name())
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("state dir %q: in use by another tapswitch daemon (pid %s)", dir, strings.TrimSpace(string(pid)))
		}
		return nil, fmt.Errorf("state dir %q: lock: %w", dir, err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &Store{dir: dir, lock: f}, nil
}

// Close releases the lock.
func (s *Store) Close() error {
	if s.lock == nil {
		return nil
	}
	err := s.lock.Close()
	s.lock = nil
	return err
}

// Path is the state file's path.
func (s *Store) Path() string { return filepath.Join(s.dir, FileName) }

// Load reads the file; a missing file is an empty state.
func (s *Store) Load() (*State, error) {
	b, err := os.ReadFile(s.Path())
	if errors.Is(err, fs.ErrNotExist) {
		return &State{Version: Version}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("state %s: %w", s.Path(), err)
	}
	if st.Version > Version {
		return nil, fmt.Errorf("state %s: version %d is newer than this tapswitch (%d)", s.Path(), st.Version, Version)
	}
	st.Version = Version
	return &st, nil
}

// Save replaces the file with st atomically.
func (s *Store) Save(st *State) error {
	cp := *st
	cp.Version = Version
	cp.Updated = time.Now().UTC()
	cp.Pods = append([]Pod(nil), st.Pods...)
	sort.Slice(cp.Pods, func(a, b int) bool { return cp.Pods[a].Name < cp.Pods[b].Name })
	if cp.Pods == nil {
		cp.Pods = []Pod{}
	}
	b, err := json.MarshalIndent(&cp, "", "  ")
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	b = append(b, '\n')
	return s.writeFile(FileName, b)
}

// Remove deletes the file (after the daemon removed everything it made).
func (s *Store) Remove() error {
	if err := os.Remove(s.Path()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}
