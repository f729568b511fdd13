package api

import (
	"fmt"
	"net"
	"os"
	"time"
)

// CheckFree reports an error when a daemon answers on the socket at path
// (or path is something other than a socket), changing nothing: `run`
// asks it before it touches the host, so that a second daemon on the same
// socket refuses before it opens the first one's gateway or replaces its
// nftables table. Listen checks again when it binds.
func CheckFree(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("control socket %s: exists and is not a socket", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return nil // stale: Listen replaces it
	}
	c.Close()
	return fmt.Errorf("control socket %s: another tapswitch daemon is listening", path)
}

// invalidInput is an ErrInvalid whose text is only the message, as the
// daemon's own input errors read.
type invalidInput string

func (e invalidInput) Error() string        { return string(e) }
func (e invalidInput) Is(target error) bool { return target == ErrInvalid }
