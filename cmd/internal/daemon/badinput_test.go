package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/cmd/internal/nodetest"
	"github.com/tapswitch/tapswitch/netns"
)

var bg = context.Background()

var tempTAP = regexp.MustCompile(`^tsw[0-9a-f]{8}$`)

// settled takes snapshots until one matches want or a second passed: a
// temporary TAP of a concurrent test lives for milliseconds.
func settled(t *testing.T, e *nodetest.Env, want snapshot) string {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		d := want.diff(take(t, e))
		if d == "" || time.Now().After(deadline) {
			return d
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// snapshot is what a failed request must leave unchanged.
type snapshot struct {
	netns []string
	ports []string
	fdb   int
	links []string
}

func take(t *testing.T, e *nodetest.Env) snapshot {
	t.Helper()
	var s snapshot
	s.netns = e.Namespaces()
	ports, err := e.Client.Ports(bg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ports {
		s.ports = append(s.ports, p.Name+"/"+p.State)
	}
	f, err := e.Client.FDB(bg)
	if err != nil {
		t.Fatal(err)
	}
	s.fdb = len(f)
	// Host links this test may have made: its gateway and tap's temporary
	// names for a pod TAP on its way into the pod's namespace. (Other
	// packages' tests run at the same time and make their own.)
	links, _ := netlink.LinkList()
	id := strings.TrimSuffix(e.Prefix, "-")
	for _, l := range links {
		if n := l.Attrs().Name; strings.HasPrefix(n, id) || tempTAP.MatchString(n) {
			s.links = append(s.links, n)
		}
	}
	slices.Sort(s.links)
	return s
}

func (s snapshot) diff(o snapshot) string {
	switch {
	case !slices.Equal(s.netns, o.netns):
		return fmt.Sprintf("namespaces %v -> %v", s.netns, o.netns)
	case !slices.Equal(s.ports, o.ports):
		return fmt.Sprintf("ports %v -> %v", s.ports, o.ports)
	case s.fdb != o.fdb:
		return fmt.Sprintf("fdb entries %d -> %d", s.fdb, o.fdb)
	case !slices.Equal(s.links, o.links):
		return fmt.Sprintf("host links %v -> %v", s.links, o.links)
	}
	return ""
}

// TestBadInputs sends every kind of bad request a user can make and checks
// that each gets an error naming the input, of the right kind, and that
// nothing was created.
func TestBadInputs(t *testing.T) {
	e := nodetest.New(t)
	e.Start()
	a := e.AddQuietPod("a", 2)
	long := strings.Repeat("x", 64)
	cases := []struct {
		name string
		spec api.PodSpec
		kind error
		want string
	}{
		{"UpperCaseName", api.PodSpec{Name: "Web", IP: e.CIDR(9)}, api.ErrInvalid, `pod "Web": invalid name`},
		{"Underscore", api.PodSpec{Name: "web_1", IP: e.CIDR(9)}, api.ErrInvalid, `pod "web_1": invalid name`},
		{"LeadingDash", api.PodSpec{Name: "-web", IP: e.CIDR(9)}, api.ErrInvalid, `pod "-web": invalid name`},
		{"SlashInName", api.PodSpec{Name: "../etc", IP: e.CIDR(9)}, api.ErrInvalid, `pod "../etc": invalid name`},
		{"LongName", api.PodSpec{Name: long, IP: e.CIDR(9)}, api.ErrInvalid, fmt.Sprintf("pod %q: name longer than 63", long)},
		{"EmptyName", api.PodSpec{IP: e.CIDR(9)}, api.ErrInvalid, "pod name: must not be empty"},
		{"NoIP", api.PodSpec{Name: "web-1"}, api.ErrInvalid, `pod "web-1": ip: required`},
		{"BadCIDR", api.PodSpec{Name: "web-1", IP: "10.0.0.300/24"}, api.ErrInvalid, `pod "web-1": ip "10.0.0.300/24": invalid CIDR`},
		{"BadAddr", api.PodSpec{Name: "web-1", IP: "pod"}, api.ErrInvalid, `pod "web-1": ip "pod": invalid address`},
		{"IPv6", api.PodSpec{Name: "web-1", IP: "fd00::5/64"}, api.ErrInvalid, `pod "web-1": ip "fd00::5/64": IPv6, but the node has no IPv6 pod subnet (subnet_v6)`},
		{"OutsideSubnet", api.PodSpec{Name: "web-1", IP: "192.0.2.5/24"}, api.ErrInvalid, `pod "web-1": ip "192.0.2.5/24": outside the pod subnet ` + e.Subnet.String()},
		{"OtherPrefixLen", api.PodSpec{Name: "web-1", IP: e.IP(9).String() + "/16"}, api.ErrInvalid, "prefix length /16 differs from the pod subnet"},
		{"NetworkAddr", api.PodSpec{Name: "web-1", IP: e.CIDR(0)}, api.ErrInvalid, "the subnet's network address"},
		{"BroadcastAddr", api.PodSpec{Name: "web-1", IP: e.CIDR(255)}, api.ErrInvalid, "the subnet's broadcast address"},
		{"GatewayAddr", api.PodSpec{Name: "web-1", IP: e.CIDR(1)}, api.ErrConflict, "is the gateway's address"},
		{"DuplicateIP", api.PodSpec{Name: "web-1", IP: e.CIDR(2)}, api.ErrConflict, fmt.Sprintf(`pod "web-1": ip %s: already used by pod "a"`, e.IP(2))},
		{"DuplicateMAC", api.PodSpec{Name: "web-1", IP: e.CIDR(9), MAC: a.MAC}, api.ErrConflict, fmt.Sprintf(`pod "web-1": mac %s: already used by pod "a"`, a.MAC)},
		{"BadMAC", api.PodSpec{Name: "web-1", IP: e.CIDR(9), MAC: "02:00:zz"}, api.ErrInvalid, `pod "web-1": mac "02:00:zz": invalid MAC`},
		{"MulticastMAC", api.PodSpec{Name: "web-1", IP: e.CIDR(9), MAC: "01:00:5e:00:00:01"}, api.ErrInvalid, "not a unicast address"},
		{"BadVLAN", api.PodSpec{Name: "web-1", IP: e.CIDR(9), VLAN: 4095}, api.ErrInvalid, `pod "web-1": vlan 4095: want 1-4094`},
		{"DuplicateName", api.PodSpec{Name: "a", IP: e.CIDR(9)}, api.ErrConflict, `pod "a": already exists`},
		{"GatewayName", api.PodSpec{Name: e.GwIf, IP: e.CIDR(9)}, api.ErrConflict, "name taken by the gateway port"},
		// Init's namespace: the daemon's own, or one it may not open
		// (a protected /proc entry); either way the input is at fault.
		{"InitNetns", api.PodSpec{Name: "web-1", IP: e.CIDR(9), NetNS: "/proc/1/ns/net"}, api.ErrInvalid, `pod "web-1": netns "/proc/1/ns/net": `},
		{"InitNetnsSlash", api.PodSpec{Name: "web-1", IP: e.CIDR(9), NetNS: "/proc/1/ns/net/"}, api.ErrInvalid, `pod "web-1": netns "/proc/1/ns/net/": `},
		{"PlainFileNetns", api.PodSpec{Name: "web-1", IP: e.CIDR(9), NetNS: "/proc/self/status"}, api.ErrInvalid, `pod "web-1": netns "/proc/self/status": not a namespace`},
		// Interface names: the one rule of package netns.
		{"LongIfName", api.PodSpec{Name: "web-1", IP: e.CIDR(9), IfName: "abcdefghijklmnop"}, api.ErrInvalid, `pod "web-1": ifname "abcdefghijklmnop": want 1-15 bytes`},
		{"NonASCIIIfName", api.PodSpec{Name: "web-1", IP: e.CIDR(9), IfName: "ethé"}, api.ErrInvalid, `pod "web-1": ifname "ethé": character 'é' not allowed`},
		{"SlashIfName", api.PodSpec{Name: "web-1", IP: e.CIDR(9), IfName: "a/b"}, api.ErrInvalid, `pod "web-1": ifname "a/b": character '/' not allowed`},
	}
	before := take(t, e)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.Client.AddPod(bg, c.spec)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q (kind %v), want %q of kind %v", err, kindOf(err), c.want, c.kind)
			}
			if d := settled(t, e, before); d != "" {
				t.Errorf("a refused add changed the node: %s", d)
			}
		})
	}

	t.Run("DeleteEmptyName", func(t *testing.T) {
		err := e.Client.DeletePod(bg, "")
		if !errors.Is(err, api.ErrInvalid) || err.Error() != "pod name: must not be empty" {
			t.Errorf("del \"\": %v (kind %v), want the add's error", err, kindOf(err))
		}
	})
	t.Run("UnknownPod", func(t *testing.T) {
		err := e.Client.DeletePod(bg, "nope")
		if !errors.Is(err, api.ErrNotFound) || err.Error() != `pod "nope": no such pod` {
			t.Errorf("del: %v", err)
		}
		if _, err := e.Client.Pod(bg, "nope"); !errors.Is(err, api.ErrNotFound) {
			t.Errorf("get: %v", err)
		}
	})

	t.Run("UnknownJSONField", func(t *testing.T) {
		code, body := post(t, e.Cfg.Socket, `{"name":"web-1","ip":"`+e.CIDR(9)+`","colour":"blue"}`)
		if code != http.StatusBadRequest || !strings.Contains(body, `unknown field \"colour\"`) {
			t.Errorf("%d %s", code, body)
		}
	})
	t.Run("OversizeBody", func(t *testing.T) {
		code, body := post(t, e.Cfg.Socket, `{"name":"`+strings.Repeat("a", api.MaxBody)+`"}`)
		if code != http.StatusBadRequest || !strings.Contains(body, "request body over") {
			t.Errorf("%d %s", code, body)
		}
	})
	t.Run("TrailingData", func(t *testing.T) {
		code, body := post(t, e.Cfg.Socket, `{"name":"web-1","ip":"`+e.CIDR(9)+`"} {}`)
		if code != http.StatusBadRequest || !strings.Contains(body, "data after the JSON object") {
			t.Errorf("%d %s", code, body)
		}
	})
	if d := settled(t, e, before); d != "" {
		t.Errorf("bad requests changed the node: %s", d)
	}

	t.Run("DaemonNotRunning", func(t *testing.T) {
		missing := filepath.Join(e.Dir, "missing.sock")
		_, err := api.NewClient(missing).Ports(bg)
		if err == nil || !strings.HasPrefix(err.Error(), "daemon not running: dial unix "+missing) {
			t.Errorf("missing socket: %v", err)
		}
		// A socket file left by a crashed daemon: nobody listens.
		stale := filepath.Join(e.Dir, "stale.sock")
		l, err := net.Listen("unix", stale)
		if err != nil {
			t.Fatal(err)
		}
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		l.Close()
		_, err = api.NewClient(stale).Ports(bg)
		if err == nil || !strings.HasPrefix(err.Error(), "daemon not running: dial unix "+stale) || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("stale socket: %v", err)
		}
	})

	t.Run("NoPermission", func(t *testing.T) {
		fi, err := os.Stat(e.Cfg.Socket)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("socket mode %v, want 0600", fi.Mode().Perm())
		}
		out := asNobody(t, e.Cfg.Socket)
		if !strings.HasPrefix(out, "permission denied: dial unix "+e.Cfg.Socket) {
			t.Errorf("as nobody: %s", out)
		}
	})

	t.Run("FailedAddRollsBack", func(t *testing.T) {
		// Break the state directory, the last step of an add: the TAP and
		// the namespace the daemon made must go again.
		dir := e.Cfg.StateDir
		if err := os.Rename(dir, dir+".away"); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(dir, []byte("not a directory"), 0o600)
		before := take(t, e)
		_, err := e.Client.AddPod(bg, api.PodSpec{Name: "web-1", IP: e.CIDR(9)})
		os.Remove(dir)
		os.Rename(dir+".away", dir)
		if err == nil || !strings.HasPrefix(err.Error(), `pod "web-1": state`) {
			t.Fatalf("add with a broken state dir: %v", err)
		}
		if d := settled(t, e, before); d != "" {
			t.Errorf("failed add left: %s", d)
		}
		// The same add works now, and del removes the namespace it made.
		p, err := e.Client.AddPod(bg, api.PodSpec{Name: "web-1", IP: e.CIDR(9)})
		if err != nil {
			t.Fatal(err)
		}
		e.MustPing(t, "web-1", 1, 1) // the gateway, whose MAC is a local entry already
		if err := e.Client.DeletePod(bg, p.Name); err != nil {
			t.Fatal(err)
		}
		if d := settled(t, e, before); d != "" {
			t.Errorf("add then del left: %s", d)
		}
	})

	t.Run("ForeignEth0Refused", func(t *testing.T) {
		// A namespace that exists (not the daemon's) and already has an
		// eth0: the add fails, the namespace and its eth0 stay, no TAP is
		// left anywhere.
		ns := e.Netns("busy")
		if _, err := netns.CreateNamed(ns); err != nil {
			t.Fatal(err)
		}
		err := netns.FromPath(netns.PathOf(ns)).Run(func() error {
			return netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "peer0"})
		})

		if err != nil {
			t.Fatal(err)
		}
		before := take(t, e)
		_, err = e.Client.AddPod(bg, api.PodSpec{Name: "busy", IP: e.CIDR(10)})
		if !errors.Is(err, api.ErrConflict) || err.Error() != fmt.Sprintf(`pod "busy": netns %q already has an eth0`, ns) {
			t.Fatalf("add into a namespace with an eth0: %v", err)
		}
		t.Logf("refused: %v", err)
		if d := settled(t, e, before); d != "" {
			t.Errorf("failed add left: %s", d)
		}
		netns.FromPath(netns.PathOf(ns)).Run(func() error {
			l, err := netlink.LinkByName("eth0")
			if err != nil {
				t.Errorf("the namespace's own eth0 is gone: %v", err)
			} else if l.Type() != "veth" {
				t.Errorf("eth0 is now a %s", l.Type())
			}
			return nil
		})

	})
}

func kindOf(err error) error {
	for _, k := range []error{api.ErrInvalid, api.ErrNotFound, api.ErrConflict} {
		if errors.Is(err, k) {
			return k
		}
	}
	return nil
}

func post(t *testing.T, sock, body string) (int, string) {
	t.Helper()
	hc := http.Client{Transport: &http.Transport{Dial: func(_, _ string) (net.Conn, error) { return net.Dial("unix", sock) }}}
	resp, err := hc.Post("http://x/v1/pods", "application/json", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// asNobody runs the test binary as user nobody to list the ports through
// the client, and returns what the client said.
func asNobody(t *testing.T, sock string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ts-nobody")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "client")
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), clientEnv+"="+sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client as nobody: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out))
}
