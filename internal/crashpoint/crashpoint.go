// Package crashpoint lets a test kill the daemon at a named point inside a
// multi-step operation, to prove that a restart finishes or undoes it.
// It is compiled in always and does nothing unless the environment
// variable Env is set when the process starts: TAPSWITCH_CRASH_AT=NAME:N
// makes the N-th time the process passes point NAME (counting from 1)
// kill it with SIGKILL, as `kill -9` would, with no deferred function,
// no flush and no cleanup.
package crashpoint

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// Env names the variable read at start.
const Env = "TAPSWITCH_CRASH_AT"

var (
	point string
	at    int64
	hits  atomic.Int64
)

func init() {
	name, n, ok := Parse(os.Getenv(Env))
	if ok {
		point, at = name, int64(n)
	}
}

// Parse reads NAME:N; ok is false for anything else (N must be 1 or more).
func Parse(s string) (name string, n int, ok bool) {
	name, num, found := strings.Cut(s, ":")
	if !found || name == "" {
		return "", 0, false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 {
		return "", 0, false
	}
	return name, n, true
}

// Hit is a point named name: with the variable unset it costs a string
// comparison against "".
func Hit(name string) {
	if point == "" || name != point {
		return
	}
	if hits.Add(1) == at {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // SIGKILL is not caught; wait for it to land
	}
}
