package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"hearth/homeserver/wire"
)

// SocketFile is the admin socket's name inside the data folder.
const SocketFile = "admin.sock"

// maxSocketPath is the longest Unix socket path (sun_path less its NUL on Linux).
const maxSocketPath = 107

// maxBody bounds an admin request body.
const maxBody = 64 << 10

// Listen creates the admin Unix socket at path with mode 0600. The socket
// is bound inside a fresh private (0700) folder, restricted, then renamed
// into place, so it is never reachable by others, whatever the umask. A
// stale socket left by a crashed server is replaced; a live one is an
// error. Closing the listener removes the socket.
func Listen(path string) (net.Listener, error) {
	// The socket is bound under a temporary name 10 bytes longer than path.
	if len(path)+10 > maxSocketPath {
		return nil, fmt.Errorf("admin: socket path %s is too long for a Unix socket (at most %d bytes); use a shorter data folder", path, maxSocketPath-10)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	tmpDir, err := os.MkdirTemp(filepath.Dir(path), ".admin-")
	if err != nil {
		return nil, fmt.Errorf("admin: create socket: %w", err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("admin: create socket: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin: create socket: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin: create socket: %w", err)
	}
	return &socketListener{UnixListener: ln, path: path}, nil
}

// removeStale removes a socket at path that nobody answers on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("admin: %s exists and is not a socket", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("admin: a server is already answering on %s", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("admin: remove stale socket: %w", err)
	}
	return nil
}

// socketListener removes its socket file on Close.
type socketListener struct {
	*net.UnixListener
	path string
	once sync.Once
}

func (l *socketListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() { os.Remove(l.path) })
	return err
}

// SocketServer serves Ops as JSON over HTTP on the admin socket.
type SocketServer struct {
	ops   Ops
	audit AuditLog // nil: nothing recorded
	log   *slog.Logger
	srv   *http.Server

	mu sync.Mutex
	ln net.Listener // set by Serve

	backup Backuper // nil: no backups (WithBackup)
}

// NewSocketServer returns a server for ops; log may be nil. With
// WithAudit it records every request that changes something (all but GET)
// as done by ActorLocal.
func NewSocketServer(ops Ops, log *slog.Logger, opts ...SocketOption) *SocketServer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &SocketServer{ops: ops, log: log}
	for _, o := range opts {
		o(s)
	}
	a := &auditor{mux: s.routes(), log: s.audit, via: ViaSocket, now: time.Now, lg: log}
	s.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a.serve(w, r, ActorLocal, r.Method != http.MethodGet)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s
}

// Serve answers on ln (see Listen) until Shutdown or Close; then it returns nil.
func (s *SocketServer) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin: serve: %w", err)
	}
	return nil
}

// Shutdown stops accepting, waits for running requests until ctx ends, and
// closes the listener (removing the socket) before it returns.
func (s *SocketServer) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	s.closeListener()
	return err
}

// Close stops at once, removing the socket.
func (s *SocketServer) Close() error {
	err := s.srv.Close()
	s.closeListener()
	return err
}

// closeListener closes the listener given to Serve even if Serve has not
// yet registered it with the HTTP server (closing twice is harmless).
func (s *SocketServer) closeListener() {
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
}

// Request bodies.
type (
	userAddRequest struct {
		Name     string `json:"name"`
		Password []byte `json:"password"`
		Admin    bool   `json:"admin"`
	}
	passwordRequest struct {
		Password []byte `json:"password"`
	}
)

func (s *SocketServer) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		st, err := s.ops.Status(r.Context())
		s.reply(w, http.StatusOK, st, err)
	})
	mux.HandleFunc("GET /v1/users", func(w http.ResponseWriter, r *http.Request) {
		us, err := s.ops.UserList(r.Context())
		s.reply(w, http.StatusOK, nonNil(us), err)
	})
	mux.HandleFunc("POST /v1/users", func(w http.ResponseWriter, r *http.Request) {
		var req userAddRequest
		if !s.decode(w, r, &req) {
			return
		}
		defer clear(req.Password)
		noteTarget(r, "name", req.Name)
		u, err := s.ops.UserAdd(r.Context(), req.Name, req.Password, req.Admin)
		s.reply(w, http.StatusCreated, u, err)
	})
	mux.HandleFunc("POST /v1/users/{name}/disable", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, http.StatusNoContent, nil, s.ops.UserSetDisabled(r.Context(), r.PathValue("name"), true))
	})
	mux.HandleFunc("POST /v1/users/{name}/enable", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, http.StatusNoContent, nil, s.ops.UserSetDisabled(r.Context(), r.PathValue("name"), false))
	})
	mux.HandleFunc("DELETE /v1/users/{name}", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, http.StatusNoContent, nil, s.ops.UserDelete(r.Context(), r.PathValue("name")))
	})
	mux.HandleFunc("PUT /v1/users/{name}/password", func(w http.ResponseWriter, r *http.Request) {
		var req passwordRequest
		if !s.decode(w, r, &req) {
			return
		}
		defer clear(req.Password)
		s.reply(w, http.StatusNoContent, nil, s.ops.UserPasswd(r.Context(), r.PathValue("name"), req.Password))
	})
	mux.HandleFunc("GET /v1/users/{name}/devices", func(w http.ResponseWriter, r *http.Request) {
		ds, err := s.ops.DeviceList(r.Context(), r.PathValue("name"))
		s.reply(w, http.StatusOK, nonNil(ds), err)
	})
	mux.HandleFunc("DELETE /v1/users/{name}/devices/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, http.StatusNoContent, nil, s.ops.DeviceRevoke(r.Context(), r.PathValue("name"), r.PathValue("id")))
	})
	mux.HandleFunc("POST /v1/backup", s.serveBackup)
	s.federationRoutes(mux)
	s.inviteRoutes(mux)
	s.auditRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		wire.WriteError(w, s.log, wire.Errorf("admin", wire.Code_CODE_NOT_FOUND, "no admin operation %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// decode reads a JSON body into v; on failure it answers BAD_REQUEST.
func (s *SocketServer) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		wire.WriteError(w, s.log, wire.Errorf("admin", wire.Code_CODE_BAD_REQUEST, "bad request body: %v", err))
		return false
	}
	return true
}

// reply answers with v as JSON (or no body for 204), or with err.
func (s *SocketServer) reply(w http.ResponseWriter, status int, v any, err error) {
	if err != nil {
		wire.WriteError(w, s.log, err)
		return
	}
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	wire.WriteJSON(w, status, v)
}

// nonNil makes an empty list encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
