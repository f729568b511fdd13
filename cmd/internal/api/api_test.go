package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// fake is a Backend with one pod, "a".
type fake struct{ added []PodSpec }

func (f *fake) Status() Status { return Status{Switch: "fake"} }
func (f *fake) Pods() []Pod    { return []Pod{{Name: "a", State: PodUp}} }
func (f *fake) Pod(name string) (Pod, error) {
	if name == "a" {
		return Pod{Name: "a"}, nil
	}
	return Pod{}, fmt.Errorf("pod %q: %w", name, ErrNotFound)
}
func (f *fake) AddPod(_ context.Context, s PodSpec) (Pod, error) {
	if s.Name == "a" {
		return Pod{}, fmt.Errorf("pod %q: %w", s.Name, ErrConflict)
	}
	if s.IP == "bad" {
		return Pod{}, fmt.Errorf("pod %q: ip %q: %w", s.Name, s.IP, ErrInvalid)
	}
	if s.IP == "boom" {
		return Pod{}, errors.New("netlink exploded")
	}
	f.added = append(f.added, s)
	return Pod{Name: s.Name, IP: s.IP, State: PodUp}, nil
}
func (f *fake) DeletePod(_ context.Context, name string) error {
	_, err := f.Pod(name)
	return err
}
func (f *fake) Ports() []Port           { return []Port{{Kind: KindGateway}} }
func (f *fake) FDB() []FDBEntry         { return nil }
func (f *fake) Neighbours() []Neighbour { return []Neighbour{} }
func (f *fake) Stats() Stats            { return Stats{Switch: "fake"} }

func serve(t *testing.T) (*fake, *Client, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "tsapi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "run", "api.sock")
	f := &fake{}
	s, err := Listen(path, f, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return f, NewClient(path), path
}

func TestRoundTripAndErrorKinds(t *testing.T) {
	f, c, path := serve(t)
	ctx := context.Background()
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v mode %v, want 0600", err, fi.Mode().Perm())
	}
	if st, err := c.Status(ctx); err != nil || st.Switch != "fake" {
		t.Fatalf("status %+v %v", st, err)
	}
	if p, err := c.AddPod(ctx, PodSpec{Name: "b", IP: "10.0.0.2/24"}); err != nil || p.Name != "b" || len(f.added) != 1 {
		t.Fatalf("add %+v %v", p, err)
	}
	for _, tc := range []struct {
		err  error
		kind error
		msg  string
	}{
		{func() error { _, err := c.AddPod(ctx, PodSpec{Name: "a", IP: "x"}); return err }(), ErrConflict, `pod "a": already in use`},
		{func() error { _, err := c.AddPod(ctx, PodSpec{Name: "b", IP: "bad"}); return err }(), ErrInvalid, `pod "b": ip "bad": invalid input`},
		{func() error { _, err := c.Pod(ctx, "zz"); return err }(), ErrNotFound, `pod "zz": not found`},
		{c.DeletePod(ctx, "zz"), ErrNotFound, `pod "zz": not found`},
	} {
		if !errors.Is(tc.err, tc.kind) || tc.err.Error() != tc.msg {
			t.Errorf("%v: want %q of kind %v", tc.err, tc.msg, tc.kind)
		}
	}
	_, err = c.AddPod(ctx, PodSpec{Name: "b", IP: "boom"})
	var ae *Error
	if !errors.As(err, &ae) || ae.Status != 500 {
		t.Errorf("internal error: %v", err)
	}
}

func TestListenRefusesALiveSocketAndReplacesAStaleOne(t *testing.T) {
	_, _, path := serve(t)
	if _, err := Listen(path, &fake{}, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "another tapswitch daemon is listening") {
		t.Errorf("second daemon on a live socket: %v", err)
	}
	stale := filepath.Join(filepath.Dir(path), "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	s, err := Listen(stale, &fake{}, zap.NewNop())
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	s.Close(context.Background())
	plain := filepath.Join(filepath.Dir(path), "file")
	os.WriteFile(plain, nil, 0o600)
	if _, err := Listen(plain, &fake{}, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("plain file: %v", err)
	}
}

func TestClientSaysDaemonNotRunning(t *testing.T) {
	_, err := NewClient("/nonexistent/tapswitch.sock").Ports(context.Background())
	var de *DialError
	if !errors.As(err, &de) || !strings.HasPrefix(err.Error(), "daemon not running: dial unix /nonexistent/tapswitch.sock: ") {
		t.Errorf("%v", err)
	}
}
