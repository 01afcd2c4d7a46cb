package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/quic-go/quic-go"

	"hearth/homeserver/wire"
)

// Paths served.
const (
	PathWebTransport = "/hearth/v1"
	PathWebSocket    = "/hearth/v1/ws"
	PathMessages     = "/hearth/v1/messages"
	PathHealth       = "/healthz"
	// PathAdmin is the prefix of the remote admin routes (Deps.Admin).
	PathAdmin = "/hearth/v1/admin/"
)

// StreamServer serves one client control stream until it ends; it closes rwc.
type StreamServer interface {
	ServeStream(ctx context.Context, rwc io.ReadWriteCloser, remote string)
}

// HistoryServer reads a page of a conversation's history for the holder of
// accessToken: entries with conversation sequence below before (0: newest),
// newest first or oldest first as the server decides, at most limit.
type HistoryServer interface {
	History(ctx context.Context, accessToken, conversationID string, before uint64, limit int) ([]*wire.Delivery, error)
}

// Health is what GET /healthz reports besides "status". It names no users.
type Health struct {
	Domain         string `json:"domain,omitempty"`
	Version        string `json:"version,omitempty"`
	StartedMs      int64  `json:"started_ms,omitempty"`
	OnlineSessions int    `json:"online_sessions"`
}

// HealthFunc reports the server's health; an error makes /healthz answer 503.
type HealthFunc func(ctx context.Context) (Health, error)

// Config holds the transport's limits. Zero values mean the defaults.
type Config struct {
	MaxFrame          int           // largest frame; bounds WebSocket messages (wire.DefaultMaxFrame)
	MaxHeaderBytes    int           // request header bytes over HTTPS and HTTP/3 (16 KiB)
	ReadHeaderTimeout time.Duration // also bounds the TLS handshake (10 s)
	RequestTimeout    time.Duration // whole REST request read and response write (30 s)
	IdleTimeout       time.Duration // idle HTTPS keep-alive connections (60 s)
	MaxConns          int           // concurrent TCP connections (10000)
	MaxStreams        int64         // concurrent bidirectional QUIC streams per connection (16)
	QUICIdleTimeout   time.Duration // QUIC connection without any packet (60 s)
	HistoryMaxLimit   int           // largest history page (500)
	OriginPatterns    []string      // browser origins allowed besides the server's own host
}

// Defaults.
const (
	defaultMaxHeaderBytes    = 16 << 10
	defaultReadHeaderTimeout = 10 * time.Second
	defaultRequestTimeout    = 30 * time.Second
	defaultIdleTimeout       = 60 * time.Second
	defaultMaxConns          = 10000
	defaultMaxStreams        = 16
	defaultQUICIdleTimeout   = 60 * time.Second
	defaultHistoryMaxLimit   = 500
	defaultHistoryLimit      = 50
)

func (c Config) withDefaults() Config {
	set := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	setD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	set(&c.MaxFrame, wire.DefaultMaxFrame)
	set(&c.MaxHeaderBytes, defaultMaxHeaderBytes)
	set(&c.MaxConns, defaultMaxConns)
	set(&c.HistoryMaxLimit, defaultHistoryMaxLimit)
	setD(&c.ReadHeaderTimeout, defaultReadHeaderTimeout)
	setD(&c.RequestTimeout, defaultRequestTimeout)
	setD(&c.IdleTimeout, defaultIdleTimeout)
	setD(&c.QUICIdleTimeout, defaultQUICIdleTimeout)
	if c.MaxStreams <= 0 {
		c.MaxStreams = defaultMaxStreams
	}
	return c
}

// Deps are what the transport serves and with which certificates.
type Deps struct {
	Streams StreamServer  // required
	History HistoryServer // nil: GET /hearth/v1/messages answers 503
	Media   MediaSource   // nil: GET /hearth/v1/media/ID answers 503
	// Tokens serves POST /hearth/v1/token/refresh; nil: it answers 503.
	Tokens TokenServer
	// Conversations serves GET /hearth/v1/conversations; nil: it answers 503.
	Conversations ConversationLister
	Health        HealthFunc   // nil: /healthz reports only the status
	TLS           *tls.Config  // required; certificates (e.g. certs.Manager.TLSConfig); ALPN is set here
	Log           *slog.Logger // nil: discard
	// Federation serves /hearth/federation/ and /.well-known/hearth/ (the
	// server-to-server endpoints, docs/federation.md); nil: not served.
	Federation http.Handler
	// Admin serves PathAdmin: the admin routes for admin-role users'
	// access tokens (homeserver/admin.NewRESTHandler); nil: not served.
	Admin http.Handler
	// ResetKey derives QUIC stateless reset tokens. Kept across restarts
	// (cmd/hearth stores it in the data folder), it lets a restarted
	// server answer packets of connections it lost with a stateless
	// reset, so clients redial at once instead of waiting for their idle
	// timeout. nil: no stateless resets.
	ResetKey *quic.StatelessResetKey
}

func (d Deps) validate() (Deps, error) {
	if d.Streams == nil {
		return d, errors.New("transport: no StreamServer")
	}
	if d.TLS == nil {
		return d, errors.New("transport: no TLS configuration")
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return d, nil
}

// Flow-control windows. Memory held for a connection grows with what the
// peer may send unread, so idle sessions start small; the windows grow by
// auto-tuning while a stream is busy (a 1 MiB frame, a media upload).
const (
	initialStreamWindow = 16 << 10
	maxStreamWindow     = 2 << 20
	initialConnWindow   = 32 << 10
	maxConnWindow       = 4 << 20
)

// QUICConfig is the server's QUIC configuration, chosen for many long-lived
// idle sessions: no server keep-alives (clients send them, so an idle server
// sends nothing), an idle timeout that frees dead clients' state, small
// initial receive windows, few streams, datagrams on (typing, presence).
func QUICConfig(cfg Config) *quic.Config {
	cfg = cfg.withDefaults()
	return &quic.Config{
		HandshakeIdleTimeout:             5 * time.Second,
		MaxIdleTimeout:                   cfg.QUICIdleTimeout,
		InitialStreamReceiveWindow:       initialStreamWindow,
		MaxStreamReceiveWindow:           maxStreamWindow,
		InitialConnectionReceiveWindow:   initialConnWindow,
		MaxConnectionReceiveWindow:       maxConnWindow,
		MaxIncomingStreams:               cfg.MaxStreams,
		MaxIncomingUniStreams:            cfg.MaxStreams,
		KeepAlivePeriod:                  0,
		EnableDatagrams:                  true,
		EnableStreamResetPartialDelivery: true,
	}
}
