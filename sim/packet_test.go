package sim

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/tapswitch/tapswitch/arp"
	"github.com/tapswitch/tapswitch/fdb"
)

// TestARPMatchesArpPackage: the hand-written ARP bodies hosts send are the
// bytes arp.Build writes, and arp.Parse reads them back.
func TestARPMatchesArpPackage(t *testing.T) {
	sha := fdb.MAC{0x0a, 0x58, 10, 244, 0, 2}
	tha := fdb.MAC{0x0a, 0x58, 10, 244, 0, 3}
	spa, tpa := netip.MustParseAddr("10.244.0.2"), netip.MustParseAddr("10.244.0.3")
	for _, op := range []uint16{arpRequest, arpReply} {
		var mine, theirs [arpLen]byte
		putARP(mine[:], op, sha, ipOf(spa), tha, ipOf(tpa))
		if err := arp.Build(theirs[:], op, sha, spa, tha, tpa); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(mine[:], theirs[:]) {
			t.Errorf("op %d:\nmine   %x\narp pkg %x", op, mine, theirs)
		}
		p, err := arp.Parse(mine[:])
		if err != nil || p.Op != op || p.SHA != sha || p.SPA != spa || p.TPA != tpa {
			t.Errorf("arp.Parse: %+v %v", p, err)
		}
		a, ok := parseARP(theirs[:])
		if !ok || a.op != op || a.sha != sha || a.spa != ipOf(spa) || a.tha != tha || a.tpa != ipOf(tpa) {
			t.Errorf("parseARP: %+v", a)
		}
	}
}

func TestDecTTLKeepsChecksum(t *testing.T) {
	var h [ipLen]byte
	putIPv4(h[:], 7, 64, protoICMP, ipOf(netip.MustParseAddr("10.0.0.1")), ipOf(netip.MustParseAddr("10.1.2.3")), 64)
	for range 63 {
		decTTL(h[:])
		if checksum(h[:], 0) != 0 {
			t.Fatalf("ttl %d: checksum broken", h[8])
		}
	}
}

// TestQueueOrder: events fire by time, and events at one time in the order
// they were scheduled.
func TestQueueOrder(t *testing.T) {
	var q queue
	times := []int64{5, 1, 3, 1, 5, 0, 3, 1, 9, 2, 2, 0}
	for i, at := range times {
		q.push(event{at: at, a: int32(i)})
	}
	var prev event
	for i := 0; q.len() > 0; i++ {
		e := q.pop()
		if i > 0 && (e.at < prev.at || (e.at == prev.at && e.a < prev.a)) {
			t.Fatalf("event %d (t=%d) after %d (t=%d)", e.a, e.at, prev.a, prev.at)
		}
		prev = e
	}
}
