package api

import (
	"context"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/zap"
)

// TestSocketModes: the socket is root's alone (0600) until a group is
// allowed, then 0660 and owned by that group; an unknown group is an error
// naming it.
func TestSocketModes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: changes a socket's group")
	}
	g, err := user.LookupGroup("nogroup")
	if err != nil {
		t.Skipf("no group nogroup here: %v", err)
	}
	path := filepath.Join(t.TempDir(), "t.sock")
	srv, err := Listen(path, &fake{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(context.Background())
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("new socket: %v %v, want mode 0600", fi.Mode(), err)
	}
	if err := srv.AllowGroup("no-such-group-x"); err == nil || !strings.Contains(err.Error(), `group "no-such-group-x"`) {
		t.Fatalf("unknown group: %v", err)
	}
	if err := srv.AllowGroup("nogroup"); err != nil {
		t.Fatal(err)
	}
	fi, _ = os.Stat(path)
	gid, _ := strconv.Atoi(g.Gid)
	if fi.Mode().Perm() != 0o660 || int(fi.Sys().(*syscall.Stat_t).Gid) != gid {
		t.Fatalf("after AllowGroup: mode %v gid %d, want 0660 and %d", fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Gid, gid)
	}
}
