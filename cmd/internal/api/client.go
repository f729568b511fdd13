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
	"syscall"
	"time"
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
