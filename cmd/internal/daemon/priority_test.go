package daemon

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestSetNiceEveryThread checks, in a child process of its own (nice
// values do not go back down without privilege, and the test binary's
// other tests must not inherit one), that setNice reaches every thread the
// process has, and every thread it starts afterwards.
func TestSetNiceEveryThread(t *testing.T) {
	if os.Getenv("TAPSWITCH_NICE_CHILD") == "1" {
		niceChild()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSetNiceEveryThread$", "-test.count=1")
	cmd.Env = append(os.Environ(), "TAPSWITCH_NICE_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("all threads at nice 7")) {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// niceChild runs in the child: threads before, setNice(7), threads after,
// then every thread's nice value from /proc.
func niceChild() {
	hold := make(chan struct{})
	lockThreads := func(n int) {
		ready := make(chan struct{})
		for range n {
			go func() {
				runtime.LockOSThread() // a thread of its own, kept while it waits
				ready <- struct{}{}
				<-hold
			}()
		}
		for range n {
			<-ready
		}
	}
	lockThreads(3)
	if err := setNice(7); err != nil {
		fmt.Println("setNice:", err)
		os.Exit(1)
	}
	set, _ := filepath.Glob("/proc/self/task/*/stat")
	// More than the runtime keeps idle: some of these need threads
	// started after setNice, which must inherit its value.
	lockThreads(8)
	tasks, _ := filepath.Glob("/proc/self/task/*/stat")
	if len(tasks) <= len(set) {
		fmt.Printf("%d threads before, %d after: the test started none\n", len(set), len(tasks))
		os.Exit(1)
	}
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited
		}
		// Fields after the command name, which may hold spaces: state is
		// the first, nice the 17th.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if n, err := strconv.Atoi(f[16]); err != nil || n != 7 {
			fmt.Printf("%s: nice %q, want 7\n", p, f[16])
			os.Exit(1)
		}
	}
	close(hold)
	fmt.Println("all threads at nice 7")
}
