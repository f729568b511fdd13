package capture

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	vswitch "github.com/tapswitch/tapswitch/switch"
)

func TestStreamStripsHeaderAndStopsAtCount(t *testing.T) {
	c := New(vswitch.VnetHdrLen, 3)
	big := make([]byte, vswitch.VnetHdrLen+65000) // a GSO super-frame goes whole
	big[vswitch.VnetHdrLen] = 0xaa
	small := append(make([]byte, vswitch.VnetHdrLen), 0xbb, 1, 2, 3)
	c.Mirror(vswitch.Received, [][]byte{big, small, make([]byte, 4)}) // the last is shorter than the header
	c.Mirror(vswitch.Sent, [][]byte{small, small})                    // one over the count
	var buf bytes.Buffer
	res, err := c.Stream(context.Background(), &buf, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Frames != 3 {
		t.Fatalf("wrote %d frames, want 3", res.Frames)
	}
	r, err := pcapgo.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct {
		n     int
		first byte
	}{{65000, 0xaa}, {4, 0xbb}, {4, 0xbb}} {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if len(data) != want.n || ci.Length != want.n || data[0] != want.first {
			t.Errorf("record %d: %d bytes starting %#x, want %d starting %#x", i, len(data), data[0], want.n, want.first)
		}
	}
}

func TestFullQueueDropsInsteadOfBlocking(t *testing.T) {
	c := New(0, 0)
	f := make([]byte, 64)
	batch := make([][]byte, MaxQueuedFrames+10)
	for i := range batch {
		batch[i] = f
	}
	done := make(chan struct{})
	go func() { c.Mirror(vswitch.Received, batch); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Mirror blocked with nobody writing")
	}
	if c.Dropped() != 10 {
		t.Errorf("dropped %d, want 10", c.Dropped())
	}
	var buf bytes.Buffer
	res, err := c.Stream(context.Background(), &buf, Options{Duration: 50 * time.Millisecond})
	if err != nil || res.Frames != MaxQueuedFrames || res.Dropped != 10 {
		t.Errorf("stream: %+v, %v; want %d frames, 10 dropped", res, err, MaxQueuedFrames)
	}
}
