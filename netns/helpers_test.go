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

func linkNames(t *testing.T, nsPath string) []string {
	t.Helper()
	var names []string
	err := InNamespace(nsPath, func() error {
		links, err := netlink.LinkList()
		for _, l := range links {
			names = append(names, l.Attrs().Name)
		}
		return err
	})
	if err != nil {
		t.Fatalf("list links in %s: %v", nsPath, err)
	}
	return names
}
