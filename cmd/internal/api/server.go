package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
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
	s := &Server{b: b, log: log, path: path, ln: ln, done: make(chan error, 1)}
	s.srv = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
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
	m.HandleFunc("GET /v1/ports", func(w http.ResponseWriter, r *http.Request) { reply(w, http.StatusOK, s.b.Ports()) })
	m.HandleFunc("GET /v1/fdb", func(w http.ResponseWriter, r *http.Request) { reply(w, http.StatusOK, s.b.FDB()) })
	m.HandleFunc("GET /v1/arp", func(w http.ResponseWriter, r *http.Request) { reply(w, http.StatusOK, s.b.Neighbours()) })
	m.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, r *http.Request) { reply(w, http.StatusOK, s.b.Stats()) })
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
