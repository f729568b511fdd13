package netns

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/vishvananda/netlink"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
}

// uniquePrefix keeps names of concurrent or leftover test runs apart.
func uniquePrefix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "tst" + hex.EncodeToString(b)
}

// named makes the named namespace name and deletes it at cleanup.
func named(t *testing.T, name string) NS {
	t.Helper()
	n, err := Named(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Delete(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if _, err := n.Create(); err != nil {
		t.Fatal(err)
	}
	return n
}

func linkNames(t *testing.T, n NS) []string {
	t.Helper()
	var names []string
	err := n.Run(func() error {
		links, err := netlink.LinkList()
		for _, l := range links {
			names = append(names, l.Attrs().Name)
		}
		return err
	})
	if err != nil {
		t.Fatalf("list links in %s: %v", n, err)
	}
	return names
}
