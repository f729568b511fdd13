package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tapswitch/tapswitch/cmd/internal/monitor"
)

// Client talks to the daemon's socket.
type Client struct {
	path string
	hc   *http.Client
}

// NewClient returns a client for the socket at path ("" for DefaultSocket).
func NewClient(path string) *Client {
	if path == "" {
		path = DefaultSocket
	}
	c := &Client{path: path}
	c.hc = &http.Client{
		Timeout: 2 * time.Minute, // pod add may wait on netlink
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				conn, err := d.DialContext(ctx, "unix", path)
				if err != nil {
					return nil, &DialError{Path: path, Err: err}
				}
				return conn, nil
			},
			DisableKeepAlives: true,
		},
	}
	return c
}

// DialError says the daemon could not be reached, and why in words a
// person acts on.
type DialError struct {
	Path string
	Err  error
}

func (e *DialError) Error() string {
	switch {
	case errors.Is(e.Err, syscall.EACCES), errors.Is(e.Err, syscall.EPERM):
		return fmt.Sprintf("permission denied: %v (the control socket is root-only; run as root)", e.Err)
	default:
		return fmt.Sprintf("daemon not running: %v (start it with `tapswitch run`)", e.Err)
	}
}

func (e *DialError) Unwrap() error { return e.Err }

// Error is an error the daemon answered with.
type Error struct {
	Status  int
	Kind    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Is lets errors.Is(err, api.ErrNotFound) work on the client side too.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrInvalid:
		return e.Status == http.StatusBadRequest
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrConflict:
		return e.Status == http.StatusConflict
	}
	return false
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://tapswitch"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var de *DialError
		if errors.As(err, &de) {
			return de
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var eb errorBody
		if json.Unmarshal(b, &eb) != nil || eb.Error == "" {
			eb.Error = fmt.Sprintf("%s %s: %s", method, path, resp.Status)
		}
		return &Error{Status: resp.StatusCode, Kind: eb.Kind, Message: eb.Error}
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: reply: %w", method, path, err)
	}
	return nil
}

// Status asks who the daemon is.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.do(ctx, http.MethodGet, "/v1/status", nil, &s)
}

// Pods lists the pods.
func (c *Client) Pods(ctx context.Context) ([]Pod, error) {
	var p []Pod
	return p, c.do(ctx, http.MethodGet, "/v1/pods", nil, &p)
}

// Pod describes one pod.
func (c *Client) Pod(ctx context.Context, name string) (Pod, error) {
	var p Pod
	return p, c.do(ctx, http.MethodGet, "/v1/pods/"+url.PathEscape(name), nil, &p)
}

// AddPod creates a pod.
func (c *Client) AddPod(ctx context.Context, spec PodSpec) (Pod, error) {
	var p Pod
	return p, c.do(ctx, http.MethodPost, "/v1/pods", spec, &p)
}

// DeletePod removes a pod, its TAP and, if the daemon made it, its netns.
func (c *Client) DeletePod(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/pods/"+url.PathEscape(name), nil, nil)
}

// Ports lists the ports with counters.
func (c *Client) Ports(ctx context.Context) ([]Port, error) {
	var p []Port
	return p, c.do(ctx, http.MethodGet, "/v1/ports", nil, &p)
}

// FDB lists the forwarding table.
func (c *Client) FDB(ctx context.Context) ([]FDBEntry, error) {
	var e []FDBEntry
	return e, c.do(ctx, http.MethodGet, "/v1/fdb", nil, &e)
}

// Neighbours lists the snooped ARP table.
func (c *Client) Neighbours(ctx context.Context) ([]Neighbour, error) {
	var n []Neighbour
	return n, c.do(ctx, http.MethodGet, "/v1/arp", nil, &n)
}

// Stats reads the switch-wide counters.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	return s, c.do(ctx, http.MethodGet, "/v1/stats", nil, &s)
}

// stream sends a GET whose answer is read as it comes: no overall timeout
// (ctx ends it), and an error status decoded like any other.
func (c *Client) stream(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://tapswitch"+path, nil)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Transport: c.hc.Transport}
	resp, err := hc.Do(req)
	if err != nil {
		var de *DialError
		if errors.As(err, &de) {
			return nil, de
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var eb errorBody
		if json.Unmarshal(b, &eb) != nil || eb.Error == "" {
			eb.Error = fmt.Sprintf("GET %s: %s", path, resp.Status)
		}
		return nil, &Error{Status: resp.StatusCode, Kind: eb.Kind, Message: eb.Error}
	}
	return resp, nil
}

// Events streams the daemon's FDB and port events to fn until ctx ends,
// the daemon stops (nil error) or fn returns an error.
func (c *Client) Events(ctx context.Context, fn func(monitor.Event) error) error {
	resp, err := c.stream(ctx, "/v1/events")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var e monitor.Event
		if err := dec.Decode(&e); err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("GET /v1/events: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

// Capture streams a port's frames as pcap and hands each record to fn
// until the capture ends (count, duration, the port gone), ctx ends or fn
// fails. The result's Frames counts the records fn got; Dropped is the
// daemon's count, known when the capture ended on its side.
func (c *Client) Capture(ctx context.Context, spec CaptureSpec, fn func(ci gopacket.CaptureInfo, data []byte) error) (CaptureResult, error) {
	var res CaptureResult
	q := url.Values{"port": {spec.Port}}
	if spec.Count > 0 {
		q.Set("count", strconv.Itoa(spec.Count))
	}
	if spec.Duration > 0 {
		q.Set("duration", spec.Duration.String())
	}
	resp, err := c.stream(ctx, "/v1/capture?"+q.Encode())
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	r, err := pcapgo.NewReader(resp.Body)
	if err != nil {
		if ctx.Err() != nil {
			return res, nil
		}
		return res, fmt.Errorf("capture %q: pcap stream: %w", spec.Port, err)
	}
	r.SetSnaplen(1 << 20)
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			if errors.Is(err, io.EOF) {
				if d, err := strconv.ParseUint(resp.Trailer.Get(TrailerDropped), 10, 64); err == nil {
					res.Dropped = d
				}
				return res, nil
			}
			if ctx.Err() != nil {
				return res, nil
			}
			return res, fmt.Errorf("capture %q: pcap stream: %w", spec.Port, err)
		}
		if err := fn(ci, data); err != nil {
			return res, err
		}
		res.Frames++
	}
}
