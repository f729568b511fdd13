package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/tapswitch/tapswitch/cmd/internal/monitor"
)

// MaxBody bounds a request body; the largest real one is a PodSpec.
const MaxBody = 16 << 10

// Server serves a Backend on a unix socket.
type Server struct {
	b    Backend
	log  *zap.Logger
	path string
	ln   net.Listener
	srv  *http.Server
	done chan error
	// stopping closes when Close begins, ending the streams (events,
	// capture) that would otherwise hold Shutdown up.
	stopping chan struct{}
}

// Handler returns the API's routes over b, for tests that skip the socket.
func Handler(b Backend, log *zap.Logger) http.Handler {
	s := &Server{b: b, log: log}
	return s.routes()
}

// Listen creates the socket at path (its directory too, mode 0755) with mode
// 0600, so only root can talk to the daemon. A stale socket left by a crash
// is replaced; a live one means another daemon runs, and is an error.
func Listen(path string, b Backend, log *zap.Logger) (*Server, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("control socket %s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s: another tapswitch daemon is listening", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("control socket %s: remove stale socket: %w", path, err)
		}
	}
	// Create the socket without group or other bits, so there is no moment
	// in which someone else could connect before the chmod.
	old := unix.Umask(0o177)
	ln, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	s := &Server{b: b, log: log, path: path, ln: ln, done: make(chan error, 1), stopping: make(chan struct{})}
	s.srv = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	s.srv.RegisterOnShutdown(func() { close(s.stopping) })
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	return s, nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// AllowGroup opens the socket to the members of group: it becomes owned by
// that group with mode 0660. Without it only root may connect.
func (s *Server) AllowGroup(group string) error {
	g, err := user.LookupGroup(group)
	if err != nil {
		return fmt.Errorf("control socket %s: group %q: %w", s.path, group, err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return fmt.Errorf("control socket %s: group %q: gid %q: %w", s.path, group, g.Gid, err)
	}
	if err := os.Chown(s.path, -1, gid); err != nil {
		return fmt.Errorf("control socket %s: group %q: %w", s.path, group, err)
	}
	if err := os.Chmod(s.path, 0o660); err != nil {
		return fmt.Errorf("control socket %s: %w", s.path, err)
	}
	return nil
}

// Close stops accepting, lets running requests finish (up to ctx), and
// removes the socket.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	<-s.done
	os.Remove(s.path)
	return err
}

func (s *Server) routes() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) { reply(w, http.StatusOK, s.b.Status()) })
	m.HandleFunc("GET /v1/pods", func(w http.ResponseWriter, r *http.Request) { reply(w, http.StatusOK, s.b.Pods()) })
	m.HandleFunc("GET /v1/pods/{name}", func(w http.ResponseWriter, r *http.Request) {
		p, err := s.b.Pod(r.PathValue("name"))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		reply(w, http.StatusOK, p)
	})
	m.HandleFunc("POST /v1/pods", func(w http.ResponseWriter, r *http.Request) {
		var spec PodSpec
		if err := decodeBody(w, r, &spec); err != nil {
			s.fail(w, r, err)
			return
		}
		p, err := s.b.AddPod(r.Context(), spec)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		reply(w, http.StatusCreated, p)
	})
	m.HandleFunc("DELETE /v1/pods/{name}", func(w http.ResponseWriter, r *http.Request) {
		if err := s.b.DeletePod(r.Context(), r.PathValue("name")); err != nil {
			s.fail(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	// An empty name, as `pod del ""` sends it: the same error as an add's.
	m.HandleFunc("DELETE /v1/pods/{$}", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, invalidInput("pod name: must not be empty"))
	})
	m.HandleFunc("GET /v1/ports", func(w http.ResponseWriter, r *http.Request) { reply(w, http.StatusOK, s.b.Ports()) })
	m.HandleFunc("GET /v1/fdb", func(w http.ResponseWriter, r *http.Request) { reply(w, http.StatusOK, s.b.FDB()) })
	m.HandleFunc("GET /v1/arp", func(w http.ResponseWriter, r *http.Request) { reply(w, http.StatusOK, s.b.Neighbours()) })
	m.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, r *http.Request) { reply(w, http.StatusOK, s.b.Stats()) })
	m.HandleFunc("GET /v1/events", s.events)
	m.HandleFunc("GET /v1/capture", s.capture)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusNotFound, errorBody{Error: fmt.Sprintf("no route %s %s", r.Method, r.URL.Path)})
	})
	return m
}

type errorBody struct {
	Error string `json:"error"`
	Kind  string `json:"kind,omitempty"` // invalid, not-found, conflict
}

// decodeBody reads exactly one JSON object of at most MaxBody bytes with
// no unknown fields.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return fmt.Errorf("%w: request body over %d bytes", ErrInvalid, MaxBody)
		}
		return fmt.Errorf("%w: request body: %v", ErrInvalid, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: request body: data after the JSON object", ErrInvalid)
	}
	return nil
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code, kind := http.StatusInternalServerError, ""
	switch {
	case errors.Is(err, ErrInvalid):
		code, kind = http.StatusBadRequest, "invalid"
	case errors.Is(err, ErrNotFound):
		code, kind = http.StatusNotFound, "not-found"
	case errors.Is(err, ErrConflict):
		code, kind = http.StatusConflict, "conflict"
	}
	if code == http.StatusInternalServerError {
		s.log.Error("request failed", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
	}
	reply(w, code, errorBody{Error: err.Error(), Kind: kind})
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// EventSource is a Backend that streams its events (GET /v1/events).
type EventSource interface {
	Events() *monitor.Hub
}

// EventBuffer is how many events wait for one slow stream reader before
// the next are dropped (and the reader told how many).
const EventBuffer = 1024

// events streams monitor events as newline-delimited JSON until the client
// goes or the server closes. A slow client loses events, never the
// daemon's time: the hub drops what does not fit and the stream says how
// many with a "dropped" event.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	es, ok := s.b.(EventSource)
	if !ok || es.Events() == nil {
		reply(w, http.StatusNotFound, errorBody{Error: "this daemon has no event stream", Kind: "not-found"})
		return
	}
	hub := es.Events()
	sub := hub.Subscribe(EventBuffer)
	defer hub.Unsubscribe(sub)
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{}) // a stream outlives the server's ReadTimeout
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc.Flush()
	enc := json.NewEncoder(w)
	var told uint64
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.stopping:
			return
		case e, ok := <-sub.C:
			if !ok {
				return
			}
			if lost := sub.Dropped(); lost > told {
				if enc.Encode(monitor.Event{Time: time.Now(), Type: monitor.Dropped, Count: lost - told}) != nil {
					return
				}
				told = lost
			}
			if enc.Encode(e) != nil {
				return
			}
			// Write out what queued meanwhile before the flush.
			for more := len(sub.C); more > 0; more-- {
				if enc.Encode(<-sub.C) != nil {
					return
				}
			}
			if rc.Flush() != nil {
				return
			}
		}
	}
}

// CaptureSpec asks for a capture of one port (GET /v1/capture).
type CaptureSpec struct {
	Port     string        // the port's name
	Count    int           // frames; 0: no limit
	Duration time.Duration // 0: no limit
}

// CaptureResult is what a capture wrote; the stream's trailers carry it.
type CaptureResult struct {
	Frames  int    `json:"frames"`
	Dropped uint64 `json:"dropped"` // frames the writer fell behind on
}

// Capturer is a Backend that mirrors a port's frames into a pcap stream.
// Capture returns an error without writing anything when it cannot start
// (no such port, already captured); then it writes the pcap file header,
// and frames as they come, to w, calling flush after each write.
type Capturer interface {
	Capture(ctx context.Context, spec CaptureSpec, w io.Writer, flush func()) (CaptureResult, error)
}

// ContentTypePcap is the capture stream's media type.
const ContentTypePcap = "application/vnd.tcpdump.pcap"

// Trailers of the capture stream.
const (
	TrailerFrames  = "Tapswitch-Capture-Frames"
	TrailerDropped = "Tapswitch-Capture-Dropped"
)

// Bounds on a capture request.
const (
	MaxCaptureCount    = 1 << 30
	MaxCaptureDuration = 24 * time.Hour
)

// ParseCaptureQuery reads ?port=NAME&count=N&duration=D.
func ParseCaptureQuery(q url.Values) (CaptureSpec, error) {
	spec := CaptureSpec{Port: q.Get("port")}
	if spec.Port == "" {
		return spec, fmt.Errorf("%w: capture: port: required", ErrInvalid)
	}
	if c := q.Get("count"); c != "" {
		n, err := strconv.Atoi(c)
		if err != nil || n < 0 || n > MaxCaptureCount {
			return spec, fmt.Errorf("%w: capture: count %q: want 0-%d", ErrInvalid, c, MaxCaptureCount)
		}
		spec.Count = n
	}
	if d := q.Get("duration"); d != "" {
		v, err := time.ParseDuration(d)
		if err != nil || v < 0 || v > MaxCaptureDuration {
			return spec, fmt.Errorf("%w: capture: duration %q: want 0 to %v (\"10s\", \"1m\")", ErrInvalid, d, MaxCaptureDuration)
		}
		spec.Duration = v
	}
	return spec, nil
}

// startWriter sends the status line and headers on the first write.
type startWriter struct {
	w       http.ResponseWriter
	started bool
}

func (sw *startWriter) Write(b []byte) (int, error) {
	if !sw.started {
		sw.started = true
		sw.w.WriteHeader(http.StatusOK)
	}
	return sw.w.Write(b)
}

// capture streams a port's frames as a pcap file (chunked), with the frame
// and drop counts as trailers.
func (s *Server) capture(w http.ResponseWriter, r *http.Request) {
	c, ok := s.b.(Capturer)
	if !ok {
		reply(w, http.StatusNotFound, errorBody{Error: "this daemon cannot capture", Kind: "not-found"})
		return
	}
	spec, err := ParseCaptureQuery(r.URL.Query())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-s.stopping:
			cancel()
		case <-ctx.Done():
		}
	}()
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", ContentTypePcap)
	h.Set("Cache-Control", "no-store")
	h.Set("Trailer", TrailerFrames+", "+TrailerDropped)
	sw := &startWriter{w: w}
	res, err := c.Capture(ctx, spec, sw, func() { rc.Flush() })
	if err != nil && !sw.started {
		h.Del("Trailer")
		h.Set("Content-Type", "application/json")
		s.fail(w, r, err)
		return
	}
	if err != nil {
		s.log.Debug("capture stream ended", zap.String("port", spec.Port), zap.Error(err))
	}
	h.Set(TrailerFrames, strconv.Itoa(res.Frames))
	h.Set(TrailerDropped, strconv.FormatUint(res.Dropped, 10))
}
