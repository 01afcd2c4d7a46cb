package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"
	"golang.org/x/net/netutil"

	"hearth/homeserver/wire"
)

// Server serves the client endpoints over QUIC (HTTP/3, WebTransport,
// native QUIC) and
// TCP (HTTPS, WebSocket).
type Server struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	ctx    context.Context // REST and WebSocket requests run under it; cancelled at shutdown
	cancel context.CancelFunc

	wt    *webtransport.Server
	https *http.Server
	quic  *quic.Transport     // set by ServeQUIC; closed by Close after the sessions
	qln   *quic.EarlyListener // set by ServeQUIC; closed by Shutdown and Close (no new connections)
	// quicDone is closed by Close once the QUIC transport is closed;
	// ServeQUIC returns then, so the caller's socket outlives the sessions.
	quicDone  chan struct{}
	closeOnce sync.Once

	altSvc atomic.Pointer[string] // Alt-Svc header value once QUIC is served

	packets packetCounter // QUICPackets

	mu      sync.Mutex
	closing bool
	// sessions holds every session being served with the cancel of its
	// context: Shutdown and Close cancel them all.
	sessions map[io.Closer]context.CancelFunc
	byKind   map[string]int // open sessions by transport (TransportWebTransport, TransportWebSocket)
	active   sync.WaitGroup
}

// The transports SessionsByTransport counts.
const (
	TransportWebTransport = "webtransport"
	TransportWebSocket    = "websocket"
)

// New builds a Server; it serves nothing until ServeQUIC / ServeTLS.
func New(cfg Config, deps Deps) (*Server, error) {
	deps, err := deps.validate()
	if err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Server{cfg: cfg, deps: deps, log: deps.Log, sessions: make(map[io.Closer]context.CancelFunc), byKind: map[string]int{}, quicDone: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	qconf := QUICConfig(cfg)
	qconf.Allow0RTT = true // only NextProtoHearth tickets permit it (quicTLSConfig)
	h3 := &http3.Server{
		TLSConfig:      quicTLSConfig(deps.TLS, deps.Now),
		QUICConfig:     qconf,
		MaxHeaderBytes: cfg.MaxHeaderBytes,
		Logger:         deps.Log,
	}
	s.wt = &webtransport.Server{H3: h3, CheckOrigin: s.checkOrigin}
	h3.Handler = s.routes(true)

	s.https = &http.Server{
		Handler:           s.routes(false),
		TLSConfig:         tlsWithProtos(deps.TLS, "http/1.1"),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.RequestTimeout, // WebSocket upgrades clear it (hijack)
		WriteTimeout:      cfg.RequestTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(deps.Log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
	}
	return s, nil
}

// tlsWithProtos clones c with ALPN protocols set.
func tlsWithProtos(c *tls.Config, protos ...string) *tls.Config {
	c = c.Clone()
	if c.MinVersion < tls.VersionTLS12 {
		c.MinVersion = tls.VersionTLS12
	}
	c.NextProtos = protos
	return c
}

// routes is the HTTP handler for one of the two listeners. WebTransport
// exists only over HTTP/3; the WebSocket only over TCP.
func (s *Server) routes(h3 bool) http.Handler {
	mux := http.NewServeMux()
	if h3 {
		mux.HandleFunc(PathWebTransport, s.serveWebTransport)
	} else {
		mux.HandleFunc("GET "+PathWebSocket, s.serveWebSocket)
	}
	mux.HandleFunc("GET "+PathMessages, s.serveMessages)
	mux.HandleFunc("GET "+PathMedia+"{id}", s.serveMedia)
	mux.HandleFunc("GET "+PathHealth, s.serveHealth)
	mux.HandleFunc("POST "+PathTokenRefresh, s.serveTokenRefresh)
	mux.HandleFunc("GET "+PathConversations, s.serveConversations)
	if s.deps.Admin != nil {
		mux.Handle(PathAdmin, s.deps.Admin)
	}
	if s.deps.Federation != nil {
		mux.Handle("/hearth/federation/", s.deps.Federation)
		mux.Handle("/.well-known/hearth/", s.deps.Federation)
	}
	if s.deps.Web != nil {
		mux.Handle("GET /{$}", s.deps.Web)
		mux.Handle("GET "+PathWeb, s.deps.Web)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		wire.WriteError(w, s.log, errNotFound)
	})
	return s.withAltSvc(s.withCORS(mux))
}

// withCORS lets web clients served from allowed origins (see checkOrigin)
// read the REST endpoints. Requests carry a bearer token, never cookies, so
// no credentials are allowed; preflights for the Authorization header are
// answered here.
func (s *Server) withCORS(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || !s.checkOrigin(r) {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Add("Vary", "Origin")
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Set("Access-Control-Expose-Headers", "Content-Range, Accept-Ranges, Content-Length, ETag")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			w.Header().Set("Access-Control-Allow-Methods", "GET")
			w.Header().Set("Access-Control-Allow-Headers", "Authorization, Range")
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) withAltSvc(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := s.altSvc.Load(); v != nil {
			w.Header().Set("Alt-Svc", *v)
		}
		h.ServeHTTP(w, r)
	})
}

// ServeQUIC serves HTTP/3, WebTransport and native QUIC (NextProtoHearth,
// native.go) on pc until Shutdown or Close;
// then it returns nil. The caller keeps ownership of pc and closes it after.
// The QUIC transport on pc carries Deps.ResetKey (stateless resets).
func (s *Server) ServeQUIC(pc net.PacketConn) error {
	tr := &quic.Transport{Conn: pc, StatelessResetKey: s.deps.ResetKey}
	ln, err := tr.ListenEarly(s.wt.H3.TLSConfig, s.wt.H3.QUICConfig)
	if err != nil {
		return fmt.Errorf("transport: serve QUIC: %w", err)
	}
	s.mu.Lock()
	if s.closing || s.quic != nil {
		twice := !s.closing
		s.mu.Unlock()
		ln.Close()
		if twice {
			return errors.New("transport: ServeQUIC called twice")
		}
		return nil
	}
	s.quic, s.qln = tr, ln
	s.mu.Unlock()
	if ua, ok := pc.LocalAddr().(*net.UDPAddr); ok {
		v := fmt.Sprintf(`h3=":%d"; ma=86400`, ua.Port)
		s.altSvc.Store(&v)
	}
	for {
		conn, err := ln.Accept(context.Background())
		if err != nil {
			if s.isClosing() {
				<-s.quicDone // sessions keep using the socket until Close
				return nil
			}
			return fmt.Errorf("transport: serve QUIC: %w", err)
		}
		if conn.ConnectionState().TLS.NegotiatedProtocol == NextProtoHearth {
			s.packets.add(conn)    // until nativeConn.Close: no hook on its context
			go s.serveNative(conn) // native.go
			continue
		}
		s.packets.track(conn)
		go func() {
			if err := s.wt.ServeQUICConn(conn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Debug("QUIC connection ended", "remote", conn.RemoteAddr(), "err", err)
			}
		}()
	}
}

// ServeTLS serves HTTPS (REST, WebSocket) with TLS on the TCP listener ln
// until Shutdown or Close; then it returns nil. It closes ln when done.
func (s *Server) ServeTLS(ln net.Listener) error {
	ln = tls.NewListener(netutil.LimitListener(ln, s.cfg.MaxConns), s.https.TLSConfig)
	err := s.https.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("transport: serve HTTPS: %w", err)
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// serveSession runs one control stream under a context of its own,
// cancelled when ctx is, when the server shuts down (Shutdown and Close
// cancel every tracked session's) and when the stream ends; it registers
// rwc so that shutdown can close it. An idle session's reader waits below
// this frame, so the bookkeeping is done in calls (track, untrack) that
// keep it small (homeserver.ServeStream says why). The session's context
// hangs off ctx alone: no hook on the server's context per session.
func (s *Server) serveSession(ctx context.Context, rwc io.ReadWriteCloser, remote, kind string) {
	ctx, ok := s.track(ctx, rwc, kind)
	if !ok {
		return
	}
	defer s.untrack(rwc, kind)
	s.deps.Streams.ServeStream(ctx, rwc, remote)
}

// track registers a session and returns its context; false (rwc
// closed) when the server is closing.
//
//go:noinline
func (s *Server) track(ctx context.Context, rwc io.ReadWriteCloser, kind string) (context.Context, bool) {
	ctx, cancel := context.WithCancel(ctx)
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		cancel()
		rwc.Close()
		return nil, false
	}
	s.sessions[rwc] = cancel
	s.byKind[kind]++
	s.active.Add(1)
	s.mu.Unlock()
	return ctx, true
}

// untrack unregisters a session that ended, cancels its context and
// closes rwc.
//
//go:noinline
func (s *Server) untrack(rwc io.ReadWriteCloser, kind string) {
	s.mu.Lock()
	cancel := s.sessions[rwc]
	delete(s.sessions, rwc)
	s.byKind[kind]--
	s.mu.Unlock()
	cancel()
	rwc.Close()
	s.active.Done()
}

// cancelSessions cancels the context of every session being served.
func (s *Server) cancelSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, cancel := range s.sessions {
		cancel()
	}
}

// SessionsByTransport returns the control streams being served by
// transport; both transports are always present.
func (s *Server) SessionsByTransport() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return map[string]int{TransportWebTransport: s.byKind[TransportWebTransport], TransportWebSocket: s.byKind[TransportWebSocket],
		TransportQUIC: s.byKind[TransportQUIC]}
}

// Sessions returns the number of control streams being served.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Shutdown stops accepting connections, cancels the context of every
// session so the StreamServer can end it cleanly, and waits for the
// sessions until ctx is done; then it closes whatever is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	qln := s.qln
	s.mu.Unlock()
	if qln != nil {
		qln.Close() // no new QUIC connections; established ones go on
	}
	httpErr := s.https.Shutdown(ctx) // stops the TCP listener; upgraded WebSockets continue
	s.cancel()
	s.cancelSessions()
	done := make(chan struct{})
	go func() { s.active.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("transport: shutdown: %d sessions still open: %w", s.Sessions(), ctx.Err())
	}
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err == nil && httpErr != nil && !errors.Is(httpErr, context.Canceled) {
		err = fmt.Errorf("transport: shutdown HTTPS: %w", httpErr)
	}
	return err
}

// Close closes every connection and session at once.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closing = true
	open := make([]io.Closer, 0, len(s.sessions))
	for c := range s.sessions {
		open = append(open, c)
	}
	s.mu.Unlock()
	s.cancel()
	s.cancelSessions()
	// Connections first: a closed QUIC connection ends its sessions, so
	// closing the streams below does not wait for peers.
	errH := s.https.Close()
	errW := s.wt.Close()
	s.mu.Lock()
	tr, qln := s.quic, s.qln
	s.mu.Unlock()
	if qln != nil {
		qln.Close()
	}
	if tr != nil {
		tr.Close() // after the connections: their CONNECTION_CLOSE went out on it
	}
	s.closeOnce.Do(func() { close(s.quicDone) })
	var wg sync.WaitGroup
	for _, c := range open {
		wg.Go(func() { c.Close() })
	}
	wg.Wait()
	s.active.Wait()
	return errors.Join(errH, errW)
}
