package podnet

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// TransferResult is one TCP transfer, measured at the receiver.
type TransferResult struct {
	Bytes    int64
	Duration time.Duration // first byte sent to last byte received
	SentSHA  [32]byte      // SHA-256 of what the sender wrote
	RecvSHA  [32]byte      // SHA-256 of what the receiver read
}

// Bits per second.
func (r TransferResult) Rate() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Bytes) * 8 / r.Duration.Seconds()
}

// Match says both ends saw the same bytes.
func (r TransferResult) Match() bool { return r.SentSHA == r.RecvSHA }

func (r TransferResult) String() string {
	return fmt.Sprintf("%d MiB in %.3fs = %s, sha256 %x %s",
		r.Bytes>>20, r.Duration.Seconds(), FormatRate(r.Rate()), r.RecvSHA[:6], map[bool]string{true: "matches", false: "DIFFERS"}[r.Match()])
}

// FormatRate renders bits per second as Gbit/s or Mbit/s.
func FormatRate(bps float64) string {
	if bps >= 1e9 {
		return fmt.Sprintf("%.2f Gbit/s", bps/1e9)
	}
	return fmt.Sprintf("%.1f Mbit/s", bps/1e6)
}

const chunk = 256 << 10

// Transfer sends size bytes of pseudo-random data over one TCP connection
// from netns from to a listener on dst inside netns to, and hashes the
// stream at both ends. The data differs from run to run.
func Transfer(ctx context.Context, from, to string, dst netip.Addr, size int64) (TransferResult, error) {
	var res TransferResult
	ln, err := Listen(ctx, to, tcpNet(dst), net.JoinHostPort(dst.String(), "0"))
	if err != nil {
		return res, fmt.Errorf("transfer: %w", err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	type recv struct {
		n   int64
		sha [32]byte
		end time.Time
		err error
	}
	rc := make(chan recv, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			rc <- recv{err: err}
			return
		}
		defer c.Close()
		stop := context.AfterFunc(ctx, func() { c.Close() })
		defer stop()
		n, sha, err := ReceiveStream(c)
		rc <- recv{n: n, sha: sha, end: time.Now(), err: err}
	}()

	conn, err := Dial(ctx, from, tcpNet(dst), net.JoinHostPort(dst.String(), strconv.Itoa(port)))
	if err != nil {
		ln.Close()
		<-rc
		return res, fmt.Errorf("transfer: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	sent, werr := SendStream(conn, size)
	res.SentSHA = sent.SHA
	var r recv
	select {
	case r = <-rc:
	case <-time.After(30 * time.Second):
		conn.Close()
		ln.Close()
		r = <-rc
		if r.err == nil {
			r.err = errors.New("receiver did not see the end of the stream within 30s")
		}
	}
	conn.Close()
	res.Bytes, res.RecvSHA, res.Duration = r.n, r.sha, r.end.Sub(sent.Start)
	if werr != nil {
		return res, fmt.Errorf("transfer %s -> %s: send after %d bytes: %w", from, dst, sent.Bytes, werr)
	}
	if r.err != nil {
		return res, fmt.Errorf("transfer %s -> %s: receive after %d bytes: %w", from, dst, r.n, r.err)
	}
	if r.n != size {
		return res, fmt.Errorf("transfer %s -> %s: sent %d bytes, received %d", from, dst, size, r.n)
	}
	if !res.Match() {
		return res, fmt.Errorf("transfer %s -> %s: sha256 differs: sent %x, received %x", from, dst, res.SentSHA, res.RecvSHA)
	}
	return res, nil
}

// tcpNet is the network of a TCP connection to dst.
func tcpNet(dst netip.Addr) string {
	if dst.Is6() && !dst.Is4In6() {
		return "tcp6"
	}
	return "tcp4"
}

// Sent is what SendStream wrote.
type Sent struct {
	Bytes int64     // written, the last chunk in part if a write failed
	SHA   [32]byte  // SHA-256 of every chunk it wrote or began to write
	Start time.Time // just before the first byte was written
}

// SendStream writes size bytes of pseudo-random data to conn in 256 KiB
// chunks and then closes its write side (CloseWrite), so that the receiver
// (ReceiveStream) sees the end of the stream. The data differs from run to
// run, and each chunk starts with its index, so that the stream never
// repeats: a lost or reordered chunk changes the hash. It stops at the
// first failed write; the result holds what got that far.
func SendStream(conn net.Conn, size int64) (Sent, error) {
	var s Sent
	buf := make([]byte, chunk)
	rng := rand.NewChaCha8([32]byte{byte(time.Now().UnixNano())})
	rng.Read(buf)
	h := sha256.New()
	s.Start = time.Now()
	var werr error
	for i := uint64(0); s.Bytes < size; i++ {
		binary.LittleEndian.PutUint64(buf, i)
		b := buf[:min(int64(len(buf)), size-s.Bytes)]
		h.Write(b)
		n, err := conn.Write(b)
		s.Bytes += int64(n)
		if err != nil {
			werr = err
			break
		}
	}
	h.Sum(s.SHA[:0])
	if werr == nil {
		cw, ok := conn.(interface{ CloseWrite() error })
		if !ok {
			return s, fmt.Errorf("%T cannot close its write side", conn)
		}
		werr = cw.CloseWrite()
	}
	return s, werr
}

// ReceiveStream reads conn until the sender closes its side (or the read
// fails) and returns the bytes read and their SHA-256.
func ReceiveStream(conn net.Conn) (n int64, sha [32]byte, err error) {
	h := sha256.New()
	buf := make([]byte, chunk)
	n, err = io.CopyBuffer(h, conn, buf) // io.CopyBuffer: hash.Hash has no ReaderFrom
	h.Sum(sha[:0])
	return n, sha, err
}
