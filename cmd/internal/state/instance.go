package state

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// InstanceName is the file in the state directory that holds the daemon's
// instance ID, the owner named in the marks on what it creates.
const InstanceName = "instance"

// Instance returns the daemon's instance ID, making one the first time:
// 16 hex digits, kept in the state directory so that the next daemon on
// the same state directory (a restart, kill -9 included) is the same owner.
func (s *Store) Instance() (string, error) {
	path := filepath.Join(s.dir, InstanceName)
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if !ValidInstance(id) {
			return "", fmt.Errorf("state: %s: %q is not an instance ID (16 hex digits); remove the file to make a new one", path, id)
		}
		return id, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("state: %w", err)
	}
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("state: instance ID: %w", err)
	}
	id := hex.EncodeToString(r[:])
	if err := s.writeFile(InstanceName, []byte(id+"\n")); err != nil {
		return "", err
	}
	return id, nil
}

// ValidInstance checks an instance ID's form.
func ValidInstance(id string) bool {
	if len(id) != 16 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && strings.ToLower(id) == id
}

// Intent is an operation begun and not yet finished: written, and synced,
// before its first change on the host and removed after its last, so that
// the next start finds what a crash interrupted and finishes or undoes it.
type Intent struct {
	Op  string `json:"op"` // IntentAdd or IntentDel
	Pod Pod    `json:"pod"`
	// NetnsExisted says the pod's namespace was there before the add: an
	// undo then deletes only the TAP; otherwise the add created the
	// namespace and an undo deletes it.
	NetnsExisted bool `json:"netns_existed,omitempty"`
}

// The operations an Intent records.
const (
	IntentAdd = "add"
	IntentDel = "del"
)

const intentPrefix = "intent-"

func intentFile(pod string) string { return intentPrefix + pod + ".json" }

// Begin records in. It returns once the record is on disk.
func (s *Store) Begin(in Intent) error {
	b, err := json.Marshal(&in)
	if err != nil {
		return fmt.Errorf("state: intent: %w", err)
	}
	return s.writeFile(intentFile(in.Pod.Name), append(b, '\n'))
}

// Done removes the intent of pod: its operation finished (or was undone).
func (s *Store) Done(pod string) error {
	if err := os.Remove(filepath.Join(s.dir, intentFile(pod))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("state: %w", err)
	}
	return s.syncDir()
}

// Intents lists the intents left by a previous run, by pod name. A record
// that does not parse is returned as an error naming the file.
func (s *Store) Intents() ([]Intent, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	var out []Intent
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, intentPrefix) || !strings.HasSuffix(n, ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.dir, n))
		if err != nil {
			return nil, fmt.Errorf("state: %w", err)
		}
		var in Intent
		if err := json.Unmarshal(b, &in); err != nil || in.Pod.Name == "" || (in.Op != IntentAdd && in.Op != IntentDel) {
			return nil, fmt.Errorf("state: intent %s: not an intent record (%v); remove it after checking the pod by hand", filepath.Join(s.dir, n), err)
		}
		out = append(out, in)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Pod.Name < out[b].Pod.Name })
	return out, nil
}

// writeFile replaces name in the state directory with b atomically and
// durably (temporary file, fsync, rename, fsync of the directory).
func (s *Store) writeFile(name string, b []byte) error {
	tmp, err := os.CreateTemp(s.dir, name+".tmp-*")
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("state: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("state: sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(s.dir, name)); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return s.syncDir()
}

func (s *Store) syncDir() error {
	d, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("state: sync %s: %w", s.dir, err)
	}
	return nil
}
