package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// iperf3 is the cross-check of the Go traffic engine: with Options.Iperf3
// the tcp1, tcp4, udp64 and udp64pdr cases run iperf3 instead, a server in the
// receiving pod's namespace and the client in the sender's, both entered
// with nsenter. The other cases have no iperf3 equivalent (TCP_RR, ping,
// all pairs of many pods) and keep the Go engine.

// Iperf3Version says which iperf3 would run, or why none can: the iperf3
// and nsenter binaries must be installed (`make iperf3` installs iperf3).
func Iperf3Version() (string, error) {
	for _, tool := range []string{"iperf3", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", fmt.Errorf("%s not installed (`make iperf3` installs iperf3; nsenter is util-linux's)", tool)
		}
	}
	out, err := exec.Command("iperf3", "--version").Output()
	if err != nil {
		return "", fmt.Errorf("iperf3 --version: %w", err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line), nil
}

// iperf3Port is the server's port. Each server listens inside a pod's own
// namespace, on the pod's address, so no port is shared with the host's.
const iperf3Port = "5201"

// iperf3Server starts a one-off server (it serves one test, then exits) in
// p's namespace and returns once it listens. stop kills it if it is still
// there and reaps it.
func iperf3Server(ctx context.Context, p Pod) (stop func(), err error) {
	cmd := exec.CommandContext(ctx, "nsenter", "--net="+p.NetNS, "--",
		"iperf3", "--server", "--one-off", "--forceflush", "--bind", p.IP.String(), "--port", iperf3Port)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("iperf3 server in %s: %w", p.NetNS, err)
	}
	stop = func() {
		cmd.Process.Kill()
		cmd.Wait()
	}
	listening := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Server listening") {
				listening <- nil
				io.Copy(io.Discard, out) // keep the pipe drained
				return
			}
		}
		listening <- fmt.Errorf("iperf3 server in %s exited before listening: %s", p.NetNS, strings.TrimSpace(stderr.String()))
	}()
	select {
	case err = <-listening:
	case <-time.After(10 * time.Second):
		err = fmt.Errorf("iperf3 server in %s: not listening after 10 s", p.NetNS)
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

// iperf3Report is the part of `iperf3 --client --json`'s output the cases
// read.
type iperf3Report struct {
	End struct {
		SumReceived struct {
			Seconds float64 `json:"seconds"`
			Bytes   float64 `json:"bytes"`
		} `json:"sum_received"`
		Sum struct { // UDP: the client's sending, with the server's losses
			Seconds     float64 `json:"seconds"`
			Packets     int64   `json:"packets"`
			LostPackets int64   `json:"lost_packets"`
		} `json:"sum"`
	} `json:"end"`
	Error string `json:"error"`
}

// iperf3Client runs the client in f.From's namespace against the server
// in f.To's and decodes its JSON report. atStart, when set, runs once the
// client has started and delay has passed.
func iperf3Client(ctx context.Context, f Flow, delay time.Duration, atStart func(), args ...string) (iperf3Report, error) {
	stop, err := iperf3Server(ctx, f.To)
	if err != nil {
		return iperf3Report{}, err
	}
	defer stop()
	full := append([]string{"--net=" + f.From.NetNS, "--", "iperf3", "--client", f.To.IP.String(), "--port", iperf3Port, "--json"}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", full...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return iperf3Report{}, fmt.Errorf("iperf3 %s -> %s: %w", f.From.IP, f.To.IP, err)
	}
	// atStart runs here, not on a timer's goroutine, so that it happens
	// before whatever the caller does once this returns.
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var werr error
	if atStart != nil {
		select {
		case <-time.After(delay):
			atStart()
			werr = <-done
		case werr = <-done: // over within delay: nothing was measured
		}
	} else {
		werr = <-done
	}
	var rep iperf3Report
	if err := json.Unmarshal([]byte(stdout.String()), &rep); err != nil {
		return rep, fmt.Errorf("iperf3 %s -> %s: %v, stderr %q: its JSON: %w", f.From.IP, f.To.IP, werr, strings.TrimSpace(stderr.String()), err)
	}
	if rep.Error != "" {
		return rep, fmt.Errorf("iperf3 %s -> %s: %s", f.From.IP, f.To.IP, rep.Error)
	}
	if werr != nil {
		return rep, fmt.Errorf("iperf3 %s -> %s: %w: %s", f.From.IP, f.To.IP, werr, strings.TrimSpace(stderr.String()))
	}
	return rep, nil
}

// iperf3Whole is d in iperf3's whole seconds (its --time and --omit take
// integers), rounded, at least min.
func iperf3Whole(d time.Duration, min int) int {
	return max(min, int(math.Round(d.Seconds())))
}

// iperf3Seconds is iperf3Whole as an argument.
func iperf3Seconds(d time.Duration, min int) string { return strconv.Itoa(iperf3Whole(d, min)) }

// Iperf3TCP measures streams parallel TCP streams f.From -> f.To with
// iperf3 for dur after an omitted warm (both rounded to whole seconds, dur
// at least 1). mark, when set, runs at the start and end of the measured
// time (CPU sampling).
func Iperf3TCP(ctx context.Context, f Flow, streams int, warm, dur time.Duration, mark func(start bool)) (Throughput, error) {
	// The measured time starts when iperf3 stops omitting: after the
	// rounded warm, not warm itself.
	omit := iperf3Whole(warm, 0)
	var atStart func()
	if mark != nil {
		atStart = func() { mark(true) }
	}
	rep, err := iperf3Client(ctx, f, time.Duration(omit)*time.Second, atStart,
		"--time", iperf3Seconds(dur, 1), "--omit", strconv.Itoa(omit), "--parallel", strconv.Itoa(streams))
	if mark != nil {
		mark(false)
	}
	if err != nil {
		return Throughput{}, err
	}
	s := rep.End.SumReceived
	if s.Seconds <= 0 {
		return Throughput{}, errors.New("iperf3: no received sum in its report")
	}
	return Throughput{Bytes: int64(s.Bytes), Elapsed: time.Duration(s.Seconds * float64(time.Second))}, nil
}

// Iperf3UDP floods f.From -> f.To with size-byte UDP payloads at iperf3's
// unlimited rate (--bitrate 0) for dur (whole seconds, at least 1).
func Iperf3UDP(ctx context.Context, f Flow, size int, dur time.Duration) (UDP, error) {
	return Iperf3UDPPaced(ctx, f, size, 0, dur, nil)
}

// Iperf3UDPPaced is Iperf3UDP paced by iperf3 at pps datagrams per second
// (its --bitrate counts payload bits; 0: unlimited). mark, when set, runs
// when the client starts and when it ends (CPU sampling).
func Iperf3UDPPaced(ctx context.Context, f Flow, size int, pps float64, dur time.Duration, mark func(start bool)) (UDP, error) {
	var atStart func()
	if mark != nil {
		atStart = func() { mark(true) }
	}
	rate := strconv.FormatInt(int64(pps*float64(size)*8), 10)
	rep, err := iperf3Client(ctx, f, 0, atStart,
		"--udp", "--bitrate", rate, "--length", strconv.Itoa(size), "--time", iperf3Seconds(dur, 1))
	if mark != nil {
		mark(false)
	}
	if err != nil {
		return UDP{}, err
	}
	s := rep.End.Sum
	if s.Seconds <= 0 || s.Packets == 0 {
		return UDP{}, errors.New("iperf3: no UDP sum in its report")
	}
	return UDP{
		Sent: s.Packets, Received: s.Packets - s.LostPackets, Offered: pps,
		Elapsed: time.Duration(s.Seconds * float64(time.Second)),
	}, nil
}
