package podnet

import (
	"fmt"
	"os"
)

// DisableIPv6 turns IPv6 off in namespace ns for the interfaces that exist
// and those made later. A pod made in such a namespace sends no neighbour
// discovery, router or multicast listener chatter, so the only frames on
// the switch are the ones a test or the demo sends: that makes "the ARP
// broadcast floods, then unicast" visible frame by frame.
func DisableIPv6(ns string) error {
	return inNS(ns, func() error {
		// /proc/sys/net shows the namespace of the thread that opens it.
		for _, f := range []string{"all", "default"} {
			p := "/proc/sys/net/ipv6/conf/" + f + "/disable_ipv6"
			if err := os.WriteFile(p, []byte("1\n"), 0o644); err != nil {
				return fmt.Errorf("netns %s: %w", ns, err)
			}
		}
		return nil
	})
}
