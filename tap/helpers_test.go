package tap

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/netns"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates TAP devices and network namespaces")
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

// newPod creates a pod in a fresh named netns and deletes both at cleanup.
func newPod(t *testing.T, netnsName, addr string, queues int) (*Device, PodConfig) {
	t.Helper()
	return createPod(t, podConfig(netnsName, addr, queues))
}

func podConfig(netnsName, addr string, queues int) PodConfig {
	return PodConfig{
		Name:    "pod-" + netnsName,
		NetNS:   netnsName,
		Addr:    netip.MustParsePrefix(addr),
		Gateway: netip.MustParsePrefix(addr).Masked().Addr().Next(),
		Queues:  queues,
	}
}

// createPod creates the pod of cfg, removed (namespace too) in the cleanup.
func createPod(t *testing.T, cfg PodConfig) (*Device, PodConfig) {
	t.Helper()
	t.Cleanup(func() {
		if err := DeletePod(cfg, true); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	dev, err := CreatePod(cfg)
	if err != nil {
		t.Fatalf("CreatePod: %v", err)
	}
	t.Cleanup(func() { dev.Close() })
	if !dev.CreatedNetNS() {
		t.Fatalf("CreatedNetNS false for fresh netns %q", cfg.NetNS)
	}
	return dev, cfg
}

// bridge is the test's stand-in for the switch: it copies frames between two
// devices in both directions, one goroutine per queue.
type bridge struct {
	wg      sync.WaitGroup
	devs    []*Device
	maxSize atomic.Int64 // largest frame seen, virtio-net header included
	frames  atomic.Int64
}

func startBridge(t *testing.T, a, b *Device) *bridge {
	br := &bridge{devs: []*Device{a, b}}
	for _, dir := range [][2]*Device{{a, b}, {b, a}} {
		for _, q := range dir[0].Queues() {
			br.wg.Add(1)
			go br.pump(q, dir[1].Queues()[0])
		}
	}
	t.Cleanup(br.stop)
	return br
}

func (br *bridge) pump(from, to *Queue) {
	defer br.wg.Done()
	arena := make([]byte, 2*BufSize)
	frames := make([][]byte, 16)
	out := make([][]byte, 0, len(frames))
	for {
		n, err := from.ReadBatch(arena, frames)
		if err != nil {
			return
		}
		out = out[:0]
		for _, f := range frames[:n] {
			out = append(out, f)
			for {
				cur := br.maxSize.Load()
				if int64(len(f)) <= cur || br.maxSize.CompareAndSwap(cur, int64(len(f))) {
					break
				}
			}
		}
		br.frames.Add(int64(n))
		for len(out) > 0 {
			w, err := to.WriteBatch(out)
			if err == nil {
				break
			}
			if errors.Is(err, os.ErrClosed) || IsGone(err) {
				return
			}
			out = out[w+1:] // skip the frame the kernel refused
		}
	}
}

// stop closes the devices, which ends every pump.
func (br *bridge) stop() {
	for _, d := range br.devs {
		d.Close()
	}
	br.wg.Wait()
}

// udpRoundTrip sends a datagram from one pod to another and a reply back, each
// socket opened inside its pod's namespace.
func udpRoundTrip(t *testing.T, from, to PodConfig) {
	t.Helper()
	listen := func(cfg PodConfig) *net.UDPConn {
		var c *net.UDPConn
		err := netns.FromPath(netns.PathOf(cfg.NetNS)).Run(func() (err error) {
			c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: cfg.Addr.Addr().AsSlice()})
			return err
		})

		if err != nil {
			t.Fatalf("listen in %s: %v", cfg.NetNS, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := listen(from), listen(to)
	exchange := func(src, dst *net.UDPConn, msg string) {
		t.Helper()
		buf := make([]byte, 64)
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			// Resent because the first datagram may wait on ARP resolution.
			if _, err := src.WriteToUDP([]byte(msg), dst.LocalAddr().(*net.UDPAddr)); err != nil {
				t.Fatalf("send %s: %v", msg, err)
			}
			dst.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			n, _, err := dst.ReadFromUDP(buf)
			if err == nil && string(buf[:n]) == msg {
				return
			}
		}
		t.Fatalf("%s: no datagram from %s to %s", msg, src.LocalAddr(), dst.LocalAddr())
	}
	exchange(a, b, "ping")
	exchange(b, a, "pong")
}

// linkNames lists the links in a namespace.
func linkNames(t *testing.T, nsPath string) []string {
	t.Helper()
	var names []string
	err := netns.FromPath(nsPath).Run(func() error {
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

func hostLinkExists(t *testing.T, name string) bool {
	t.Helper()
	_, err := netlink.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return false
	}
	if err != nil {
		t.Fatalf("LinkByName %q: %v", name, err)
	}
	return true
}

// tsoOn asks the kernel, as `ethtool -k` does, whether TCP segmentation offload is
// on for ifName in the calling thread's namespace.
func tsoOn(ifName string) (bool, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	value := struct{ cmd, data uint32 }{cmd: unix.ETHTOOL_GTSO}
	var req struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [16]byte
	}
	copy(req.name[:], ifName)
	req.data = unsafe.Pointer(&value)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&req))); errno != 0 {
		return false, errno
	}
	return value.data != 0, nil
}

// podPacketSocket is a packet socket on the pod's eth0, opened inside its
// namespace and closed in the cleanup, that writes frames past the qdisc
// (and any tc filter), as a flooding pod would. A frame the TAP drops comes
// back to its write as ENOBUFS.
func podPacketSocket(t *testing.T, cfg PodConfig) int {
	t.Helper()
	var fd int
	err := netns.FromPath(netns.PathOf(cfg.NetNS)).Run(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			unix.Close(fd)
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			unix.Close(fd)
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: 0, Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		return nil
	})

	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// benchPod is a one-queue pod for a benchmark, in a namespace named for
// tag and the process, removed when the benchmark ends.
func benchPod(b *testing.B, tag string) (*Device, PodConfig) {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("needs root: creates TAP devices and network namespaces")
	}
	cfg := PodConfig{Name: "bench", NetNS: fmt.Sprintf("tstbench%s%d", tag, os.Getpid()), Addr: netip.MustParsePrefix("10.250.0.2/24"), Queues: 1}
	dev, err := CreatePod(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		dev.Close()
		DeletePod(cfg, true)
	})
	return dev, cfg
}
