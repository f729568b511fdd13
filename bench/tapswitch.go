package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tapswitch/tapswitch/internal/testenv"
	"github.com/tapswitch/tapswitch/netns"
)

// TapswitchRun is one run's tapswitch settings: its own subnet, gateway TAP,
// namespace prefix, control socket and state directory, so that a bench
// never meets a daemon that is already running on the node.
type TapswitchRun struct {
	Prefix      string
	Dir         string // temporary; holds socket, state, config and log
	Subnet      netip.Prefix
	Gateway     netip.Addr
	GatewayIf   string
	NetnsPrefix string
	Socket      string
	StateDir    string
	Queues      int           // per pod TAP; 0: the daemon's default
	Batch       int           // frames per read; 0: the daemon's default
	Spin        time.Duration // > 0: one poller reads every queue and polls this long before sleeping
	SpinCPU     int           // pin the poller to this CPU; -1: the daemon's default (not pinned)
	TxQueueLen  int           // TAP queue length; 0: the daemon's default
	Nice        *int          // the daemon's nice value; nil: the daemon's default
}

// NewTapswitchRun makes the run's temporary directory.
func NewTapswitchRun(prefix string, sub netip.Prefix) (*TapswitchRun, error) {
	dir, err := os.MkdirTemp("", "tapswitch-bench-"+prefix+"-")
	if err != nil {
		return nil, fmt.Errorf("tapswitch run: %w", err)
	}
	return &TapswitchRun{
		Prefix: prefix, Dir: dir, Subnet: sub, Gateway: hostAddr(sub, 1),
		GatewayIf: prefix + "gw", NetnsPrefix: prefix + "t",
		Socket: filepath.Join(dir, "tapswitch.sock"), StateDir: filepath.Join(dir, "state"),
		SpinCPU: -1,
	}, nil
}

// PodName is pod i's name on the switch.
func (r *TapswitchRun) PodName(i int) string { return "p" + strconv.Itoa(i) }

// Pod is pod i as the traffic engine sees it.
func (r *TapswitchRun) Pod(i int) Pod {
	name := r.PodName(i)
	return Pod{Name: name, NetNS: netns.PathOf(r.NetnsPrefix + name), IP: podAddr(r.Subnet, i)}
}

// PodCIDR is pod i's address with the subnet's length, as `pod add --ip`
// takes it.
func (r *TapswitchRun) PodCIDR(i int) string {
	return netip.PrefixFrom(podAddr(r.Subnet, i), r.Subnet.Bits()).String()
}

// YAML is the daemon configuration for the run, over the built-in default.
func (r *TapswitchRun) YAML() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "switch:\n  name: bench-%s\n", r.Prefix)
	fmt.Fprintf(&b, "subnet: %s\n", r.Subnet)
	fmt.Fprintf(&b, "gateway:\n  address: %s\n  interface: %s\n", r.Gateway, r.GatewayIf)
	fmt.Fprintf(&b, "netns_prefix: %s\n", r.NetnsPrefix)
	fmt.Fprintf(&b, "socket: %s\nstate_dir: %s\n", r.Socket, r.StateDir)
	if r.Queues > 0 {
		fmt.Fprintf(&b, "queues: %d\n", r.Queues)
	}
	if r.Batch > 0 {
		fmt.Fprintf(&b, "batch: %d\n", r.Batch)
	}
	if r.TxQueueLen > 0 {
		fmt.Fprintf(&b, "tx_queue_len: %d\n", r.TxQueueLen)
	}
	if r.Spin > 0 {
		fmt.Fprintf(&b, "spin: %s\n", r.Spin)
	}
	if r.SpinCPU >= 0 {
		fmt.Fprintf(&b, "spin_cpu: %d\n", r.SpinCPU)
	}
	if r.Nice != nil {
		fmt.Fprintf(&b, "nice: %d\n", *r.Nice)
	}
	b.WriteString("log_level: warn\nremove_pods_on_exit: true\n")
	b.WriteString("nat:\n  service_masquerade: false\n") // no Services: leave the host's nftables alone
	return b.Bytes()
}

// Cleanup sweeps whatever of the run is left (namespaces, gateway TAP) and
// removes its directory. Safe to call after the daemon cleaned up itself.
func (r *TapswitchRun) Cleanup() error {
	err := testenv.Sweep(r.NetnsPrefix, r.GatewayIf)
	os.RemoveAll(r.Dir)
	return err
}

// Tapswitch is the tapswitch side run as the product is deployed: a child
// process `tapswitch run --config`, pods added with `tapswitch pod add`.
// Its CPU time is the switch's alone.
type Tapswitch struct {
	run    *TapswitchRun
	exe    string
	cmd    *exec.Cmd
	waited chan error
	pods   []Pod
	closed bool
}

// BuildTapswitch starts the daemon binary exe for run and adds n pods. On
// failure it removes what it made.
func BuildTapswitch(ctx context.Context, exe string, run *TapswitchRun, n int) (_ *Tapswitch, err error) {
	t := &Tapswitch{run: run, exe: exe}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("tapswitch topology: %w", err), t.Close())
		}
	}()
	path := filepath.Join(run.Dir, "config.yaml")
	if err := os.WriteFile(path, run.YAML(), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(run.Dir, "daemon.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(exe, "run", "--config", path)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so that a Ctrl-C reaches us and we stop it
	// in order; SIGTERM should we die first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s run: %w", exe, err)
	}
	t.cmd = cmd
	t.waited = make(chan error, 1)
	go func() { t.waited <- cmd.Wait() }()
	for i := range n {
		if err := t.addPod(ctx, i, i == 0); err != nil {
			return nil, err
		}
		t.pods = append(t.pods, run.Pod(i))
	}
	return t, nil
}

// addPod runs `tapswitch pod add`; the first one waits for the daemon.
func (t *Tapswitch) addPod(ctx context.Context, i int, wait bool) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := exec.CommandContext(ctx, t.exe, "pod", "add", t.run.PodName(i),
			"--ip", t.run.PodCIDR(i), "--socket", t.run.Socket).CombinedOutput()
		if err == nil {
			return nil
		}
		msg := strings.TrimSpace(string(out))
		if !wait || !strings.Contains(msg, "daemon not running") || time.Now().After(deadline) {
			return fmt.Errorf("pod add %s: %v: %s (daemon log: %s)", t.run.PodName(i), err, msg, t.logTail())
		}
		select {
		case werr := <-t.waited:
			t.waited <- werr
			return fmt.Errorf("daemon exited (%v): %s", werr, t.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (t *Tapswitch) logTail() string {
	b, _ := os.ReadFile(filepath.Join(t.run.Dir, "daemon.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// System implements Topology.
func (t *Tapswitch) System() string { return "tapswitch" }

// Pods implements Topology.
func (t *Tapswitch) Pods() []Pod { return t.pods }

// SwitchPID implements Topology: the daemon process.
func (t *Tapswitch) SwitchPID() int {
	if t.cmd == nil || t.cmd.Process == nil {
		return 0
	}
	return t.cmd.Process.Pid
}

// DaemonPID implements DaemonProcess: the child is the bench's alone.
func (t *Tapswitch) DaemonPID() int { return t.SwitchPID() }

// Close stops the daemon with SIGTERM (it deletes its pods and gateway on
// exit), then sweeps what is left.
func (t *Tapswitch) Close() error {
	if t.closed {
		return nil
	}
	t.closed = true
	var errs []error
	if t.cmd != nil {
		t.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-t.waited:
		case <-time.After(20 * time.Second):
			t.cmd.Process.Kill()
			<-t.waited
			errs = append(errs, errors.New("daemon did not stop within 20s of SIGTERM; killed"))
		}
	}
	errs = append(errs, t.run.Cleanup())
	return errors.Join(errs...)
}
