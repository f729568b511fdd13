package bench

import (
	"runtime"
	"testing"
)

// TestOnlineCPUs: /proc/stat accounts for at least the CPUs this process
// may run on.
func TestOnlineCPUs(t *testing.T) {
	n, err := OnlineCPUs()
	if err != nil {
		t.Fatal(err)
	}
	if n < runtime.NumCPU() {
		t.Errorf("OnlineCPUs %d, fewer than runtime.NumCPU %d", n, runtime.NumCPU())
	}
}
