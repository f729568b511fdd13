package sim

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// capture is one pcap file: nanosecond timestamps (tcpdump and Wireshark
// read them), Ethernet link type, stamped with simulated time from Epoch.
type capture struct {
	name string
	c    io.WriteCloser
	b    *bufio.Writer
	w    *pcapgo.Writer
	ci   gopacket.CaptureInfo
}

// captureName makes a file name of a link or port name.
func captureName(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.', r == '_':
			return r
		}
		return '_'
	}, name) + ".pcap"
}

func (s *Sim) openCapture(name string) int32 {
	if s.err != nil {
		return -1
	}
	file := captureName(name)
	wc, err := s.opts.Pcap(file)
	if err != nil {
		s.err = fmt.Errorf("pcap %s: %w", file, err)
		return -1
	}
	c := &capture{name: file, c: wc, b: bufio.NewWriterSize(wc, 32<<10)}
	c.w = pcapgo.NewWriterNanos(c.b)
	if err := c.w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		s.err = fmt.Errorf("pcap %s: %w", file, err)
	}
	s.caps = append(s.caps, c)
	return int32(len(s.caps) - 1)
}

func (s *Sim) capture(i int32, at int64, f []byte) {
	c := s.caps[i]
	c.ci.Timestamp = Epoch.Add(time.Duration(at))
	c.ci.CaptureLength, c.ci.Length = len(f), len(f)
	if err := c.w.WritePacket(c.ci, f); err != nil && s.err == nil {
		s.err = fmt.Errorf("pcap %s: %w", c.name, err)
	}
}

func (s *Sim) closeCaptures() {
	for _, c := range s.caps {
		if err := c.b.Flush(); err != nil && s.err == nil {
			s.err = fmt.Errorf("pcap %s: %w", c.name, err)
		}
		if err := c.c.Close(); err != nil && s.err == nil {
			s.err = fmt.Errorf("pcap %s: %w", c.name, err)
		}
	}
	s.caps = nil
}

// PcapDir returns an Options.Pcap that creates the files in dir.
func PcapDir(dir string) func(name string) (io.WriteCloser, error) {
	return func(name string) (io.WriteCloser, error) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		return os.Create(filepath.Join(dir, name))
	}
}
