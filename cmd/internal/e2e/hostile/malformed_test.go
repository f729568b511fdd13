package hostile

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/arp"
	"github.com/tapswitch/tapswitch/cmd/internal/nodetest"
	"github.com/tapswitch/tapswitch/fdb"
	"github.com/tapswitch/tapswitch/internal/testenv"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

// outcome is what became of one kind of malformed frame written by a pod.
type outcome int

const (
	refused   outcome = iota // the sending kernel refused it (sendto failed)
	dropped                  // it reached the switch, which dropped it with the expected reason
	sanitised                // the kernel rebuilt it into a valid frame, which the switch forwarded
)

func (o outcome) String() string {
	return [...]string{"refused by the sending kernel", "dropped by the switch", "sanitised by the sending kernel, forwarded"}[o]
}

// TestMalformedFramesDroppedByReason has a pod write malformed frames into
// its own eth0 (the switch's TAP) with a packet socket: runts, frames over
// the MTU, bad 802.1Q tags, truncated and garbled ARP, link-local and
// multicast-source frames, and frames with corrupt virtio-net headers
// (PACKET_VNET_HDR). Each kind is either refused by the pod's own kernel
// before the switch, or dropped by the switch and counted under its reason;
// no other port is sent anything, no receiving kernel counts an error, the
// daemon stays up and the other pods still ping.
func TestMalformedFramesDroppedByReason(t *testing.T) {
	e := nodetest.New(t)
	d := e.Start()
	a := e.AddQuietPod("a", 2)
	e.AddQuietPod("b", 3)
	e.AddQuietPod("c", 4)
	e.MustPing(t, "b", 4, 2) // b and c known to the switch and each other
	sw := d.Switch()
	am := nodetest.MAC(t, a)
	// A pod may raise its own MTU: then the kernel lets frames over the
	// switch's MTU (1500) through to the TAP.
	setMTU(t, e, "a", 9000)
	plain, vnet := writer(t, e, "a", false), writer(t, e, "a", true)

	udp := ether(bcast, am, 0x0800, udp4(e.IP(2), e.IP(255), 64)) // a valid broadcast datagram
	tag := func(vid uint16) []byte {
		f := ether(bcast, am, 0x8100, []byte{byte(vid >> 8), byte(vid), 0x08, 0x00})
		return append(f, udp[14:]...)
	}
	// hdr puts a virtio-net header in front of a copy of frame.
	hdr := func(h vswitch.VnetHdr, frame []byte) []byte {
		b := make([]byte, vswitch.VnetHdrLen+len(frame))
		h.Encode(b)
		copy(b[vswitch.VnetHdrLen:], frame)
		return b
	}
	big := ether(bcast, am, 0x0800, udp4(e.IP(2), e.IP(255), 3000))
	arpOK := arpBody(1, am, e.IP(2), fdb.MAC{}, e.IP(3))
	badOp := append([]byte(nil), arpOK...)
	badOp[7] = 9 // operation 9
	// IPv6 neighbour advertisements no host would accept.
	naOK, err := arp.BuildNDP(nil, arp.NDP{Type: arp.TypeNeighborAdvertisement, Src: netip.MustParseAddr("fe80::2"),
		Dst: netip.MustParseAddr("ff02::1"), Target: netip.MustParseAddr("fe80::2"), Flags: arp.FlagOverride, LLAddr: am, HasLLAddr: true}, arp.NDPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	naMod := func(f func(p []byte)) []byte {
		p := append([]byte(nil), naOK...)
		f(p)
		return ether(fdb.MAC{0x33, 0x33, 0, 0, 0, 1}, am, 0x86dd, p)
	}
	const (
		csum = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM
	)
	cases := []struct {
		name   string
		vnet   bool
		frame  []byte
		reason vswitch.DropReason
		// mayRefuse: the sending kernel may refuse this frame; otherwise
		// a refusal fails the test (the frame must reach the switch).
		mayRefuse bool
		// maySanitise: the kernel parses a virtio-net header into the
		// packet and the TAP writes a fresh one, so a corrupt field may
		// not survive; the switch then sees a valid frame.
		maySanitise bool
	}{
		{"runt/13-bytes", false, udp[:13], vswitch.DropRunt, true, false},
		{"runt/1-byte", false, udp[:1], vswitch.DropRunt, true, false},
		{"oversize/3042-bytes-mtu-1500", false, big, vswitch.DropOversize, false, false},
		{"oversize/vnet-gso-none", true, hdr(vswitch.VnetHdr{}, big), vswitch.DropOversize, false, false},
		{"vlan/truncated-tag", false, ether(bcast, am, 0x8100, []byte{0x00}), vswitch.DropBadVLAN, false, false},
		{"vlan/tag-only", false, ether(bcast, am, 0x8100, nil), vswitch.DropBadVLAN, false, false},
		{"vlan/not-carried-vid-100", false, tag(100), vswitch.DropBadVLAN, false, false},
		{"vlan/reserved-vid-4095", false, tag(4095), vswitch.DropBadVLAN, false, false},
		{"arp/empty", false, ether(bcast, am, 0x0806, nil), vswitch.DropARPMalformed, false, false},
		{"arp/truncated-27-bytes", false, ether(bcast, am, 0x0806, arpOK[:27]), vswitch.DropARPMalformed, false, false},
		{"arp/truncated-8-bytes", false, ether(bcast, am, 0x0806, arpOK[:8]), vswitch.DropARPMalformed, false, false},
		{"arp/bad-operation", false, ether(bcast, am, 0x0806, badOp), vswitch.DropARPMalformed, false, false},
		{"ndp/bad-checksum", false, naMod(func(p []byte) { p[42] ^= 0xff }), vswitch.DropNDPMalformed, false, false},
		{"ndp/hop-limit-64", false, naMod(func(p []byte) { p[7] = 64 }), vswitch.DropNDPMalformed, false, false},
		{"ndp/payload-past-frame", false, naMod(func(p []byte) { p[5] += 8 }), vswitch.DropNDPMalformed, false, false},
		{"ndp/option-length-0", false, naMod(func(p []byte) { p[65] = 0 }), vswitch.DropNDPMalformed, false, false},
		{"link-local/stp", false, ether(fdb.MAC{0x01, 0x80, 0xc2, 0, 0, 0}, am, 0x0027, make([]byte, 46)), vswitch.DropLinkLocal, false, false},
		{"link-local/lldp", false, ether(fdb.MAC{0x01, 0x80, 0xc2, 0, 0, 0x0e}, am, 0x88cc, make([]byte, 46)), vswitch.DropLinkLocal, false, false},
		{"source/multicast", false, ether(bcast, fdb.MAC{0x01, 0, 0x5e, 0, 0, 1}, 0x0800, udp[14:]), vswitch.DropBadSource, false, false},
		{"source/zero", false, ether(bcast, fdb.MAC{}, 0x0800, udp[14:]), vswitch.DropBadSource, false, false},
		// Corrupt virtio-net headers. The frame is the valid UDP
		// broadcast; csum 34/6 is the UDP checksum's real place.
		{"vnet/bad-gso-type-9", true, hdr(vswitch.VnetHdr{Flags: csum, GSOType: 9, HdrLen: 42, GSOSize: 1000, CsumStart: 34, CsumOffset: 6}, udp), vswitch.DropBadVnetHdr, true, true},
		{"vnet/gso-udp-l4-no-size", true, hdr(vswitch.VnetHdr{Flags: csum, GSOType: vswitch.GSOUDPL4, HdrLen: 42, CsumStart: 34, CsumOffset: 6}, udp), vswitch.DropBadVnetHdr, true, true},
		{"vnet/gso-no-needs-csum", true, hdr(vswitch.VnetHdr{GSOType: vswitch.GSOUDPL4, HdrLen: 42, GSOSize: 20}, udp), vswitch.DropBadVnetHdr, true, true},
		{"vnet/hdr-len-past-frame", true, hdr(vswitch.VnetHdr{Flags: csum, GSOType: vswitch.GSOUDPL4, HdrLen: 60000, GSOSize: 20, CsumStart: 34, CsumOffset: 6}, udp), vswitch.DropBadVnetHdr, true, true},
		{"vnet/csum-start-past-frame", true, hdr(vswitch.VnetHdr{Flags: csum, CsumStart: 60000, CsumOffset: 6}, udp), vswitch.DropBadVnetHdr, true, true},
		{"vnet/csum-offset-past-frame", true, hdr(vswitch.VnetHdr{Flags: csum, CsumStart: 34, CsumOffset: 200}, udp), vswitch.DropBadVnetHdr, true, true},
		{"vnet/csum-start-in-ethernet-header", true, hdr(vswitch.VnetHdr{Flags: csum, CsumStart: 2, CsumOffset: 0}, udp), vswitch.DropBadVnetHdr, true, true},
		{"vnet/unknown-flag-0x40", true, hdr(vswitch.VnetHdr{Flags: 0x40}, udp), vswitch.DropBadVnetHdr, true, true},
		{"vnet/gso-none-with-ecn", true, hdr(vswitch.VnetHdr{GSOType: vswitch.GSOECN}, udp), vswitch.DropBadVnetHdr, true, true},
		{"vnet/header-only", true, hdr(vswitch.VnetHdr{}, nil), vswitch.DropRunt, true, false},
	}

	others := []string{"b", "c", e.GwIf}
	rxBefore := map[string]netlink.LinkStatistics{"b": linkStats(t, e, "b"), "c": linkStats(t, e, "c")}
	const n = 5
	var report []string
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := ports(sw)
			sent := 0
			var werr error
			for i := 0; i < n; i++ {
				w := plain
				if c.vnet {
					w = vnet
				}
				if err := w.Write(c.frame); err != nil {
					werr = err
				} else {
					sent++
				}
			}
			if sent == 0 {
				if !c.mayRefuse {
					t.Fatalf("the sending kernel refused a frame that must reach the switch: %v", werr)
				}
				if !errors.Is(werr, unix.EINVAL) && !errors.Is(werr, unix.EMSGSIZE) {
					t.Errorf("refused with %v, want EINVAL or EMSGSIZE", werr)
				}
				report = append(report, fmt.Sprintf("%-36s %s (%v)", c.name, refused, werr))
				return
			}
			if sent != n {
				t.Fatalf("the kernel took %d of %d identical frames (last error %v)", sent, n, werr)
			}
			// Wait until the switch has read them all and every copy it
			// forwarded is counted.
			delta := func() (rx, drop, fwd, total uint64) {
				now := ports(sw)
				rx = now["a"].Counters.RxFrames - before["a"].Counters.RxFrames
				drop = now["a"].Counters.Drops[c.reason] - before["a"].Counters.Drops[c.reason]
				na, ba := now["a"].Counters, before["a"].Counters
				total = na.Dropped() - ba.Dropped()
				for _, o := range others {
					fwd += now[o].Counters.TxFrames - before[o].Counters.TxFrames
				}
				return
			}
			testenv.Eventually(2*time.Second, func() bool {
				rx, drop, fwd, _ := delta()
				return rx == n && (drop == n || fwd == n*uint64(len(others)))
			})
			time.Sleep(20 * time.Millisecond) // nothing more trickles in
			rx, drop, fwd, total := delta()
			switch {
			case rx != n:
				t.Fatalf("the switch read %d of the %d frames the kernel took", rx, n)
			case drop == n && total == n && fwd == 0:
				report = append(report, fmt.Sprintf("%-36s %s: %s", c.name, dropped, c.reason))
			case c.maySanitise && total == 0 && fwd == n*uint64(len(others)):
				report = append(report, fmt.Sprintf("%-36s %s", c.name, sanitised))
			default:
				t.Fatalf("%d frames: %d dropped as %s, %d dropped in all, %d copies sent to other ports; drops now %v",
					n, drop, c.reason, total, fwd, ports(sw)["a"].Counters.DropMap)
			}
		})
	}
	t.Logf("%d kinds of malformed frame, %d of each, from pod a:\n%s", len(cases), n, strings.Join(report, "\n"))

	// No receiving kernel was handed a frame it counted as an error.
	for _, p := range []string{"b", "c"} {
		st, now := rxBefore[p], linkStats(t, e, p)
		if now.RxErrors != st.RxErrors || now.RxDropped != st.RxDropped || now.RxLengthErrors != st.RxLengthErrors ||
			now.RxFrameErrors != st.RxFrameErrors || now.RxCrcErrors != st.RxCrcErrors {
			t.Errorf("pod %s's eth0 counted receive errors: before %+v, after %+v", p, st, now)
		}
	}
	for _, p := range sw.Ports() {
		if p.Counters.Drops[vswitch.DropTxError] != 0 {
			t.Errorf("port %s: %d frames the receiving TAP refused", p.Name, p.Counters.Drops[vswitch.DropTxError])
		}
	}
	t.Logf("drops counted on pod a's port: %v", ports(sw)["a"].Counters.DropMap)
	// The dataplane is unharmed.
	e.MustPing(t, "b", 4, 3)
	e.MustPing(t, "a", 3, 3)
}
