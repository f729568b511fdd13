package netns

import (
	"errors"
	"fmt"
)

// MaxIfName is the longest interface name in bytes: IFNAMSIZ less the
// terminating NUL.
const MaxIfName = 15

// CheckIfName checks the name of an interface: 1 to MaxIfName bytes of
// printable ASCII, no '/' or ':', not "." or "..". The error says what is
// wrong without repeating name, which the caller names in its own terms.
//
// The kernel takes more: any bytes but '/', ':' and its whitespace, so
// non-ASCII and control characters too. The rule is narrower so that a
// name reads the same in logs, `ip link` output and JSON, and so that the
// daemon's API, its configuration file and the TAP package, which all use
// it, accept the same names.
func CheckIfName(name string) error {
	if name == "" || len(name) > MaxIfName {
		return fmt.Errorf("want 1-%d bytes, not %d", MaxIfName, len(name))
	}
	if name == "." || name == ".." {
		return errors.New(`"." and ".." are not interface names`)
	}
	for _, r := range name {
		if r <= ' ' || r > '~' || r == '/' || r == ':' {
			return fmt.Errorf("character %q not allowed: want printable ASCII other than '/' and ':'", r)
		}
	}
	return nil
}
