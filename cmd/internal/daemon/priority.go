package daemon

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// setNice gives every thread of this process the nice value n, and with it
// every thread the process starts later: Linux keeps the nice value per
// thread, and a new thread inherits its creator's.
//
// Why a switch may want it: a TAP never pushes back. The kernel frees a
// pod's frame from the pod's socket as it queues it for the switch, so a
// pod that sends faster than the switch reads loses the excess at its own
// TAP. Through the kernel bridge the sender's own system call carries each
// frame all the way, which paces it; here the sender and the switch share
// the CPUs, and at equal priority a pod with a cheap send loop outruns the
// switch. Open vSwitch's ovs-ctl starts ovs-vswitchd at nice -10 for the
// same reason. Nice ranks threads only against others in the same CPU
// cgroup (and autogroup); against pods in cgroups of their own, the
// cgroups' cpu.weight decides. It is not the default here: what the switch gains the pods
// lose, and on two vCPUs a receiving pod then keeps up with less
// (docs/config.md has the numbers).
func setNice(n int) error {
	seen := map[int]bool{}
	// Threads started while the list is read are caught by the next pass;
	// the runtime starts few, so a pass that finds none new ends it.
	for range 16 {
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("nice %d: %w", n, err)
		}
		fresh := 0
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil || seen[tid] {
				continue
			}
			if err := unix.Setpriority(unix.PRIO_PROCESS, tid, n); err != nil {
				if errors.Is(err, unix.ESRCH) {
					continue // the thread exited
				}
				if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
					return fmt.Errorf("nice %d: %w (lowering it needs CAP_SYS_NICE or RLIMIT_NICE; nice: 0 leaves the priority alone)", n, err)
				}
				return fmt.Errorf("nice %d: thread %d: %w", n, tid, err)
			}
			seen[tid] = true
			fresh++
		}
		if fresh == 0 {
			return nil
		}
	}
	return fmt.Errorf("nice %d: threads kept starting while they were set; some may have the old value", n)
}
