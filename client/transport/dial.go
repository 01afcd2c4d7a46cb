package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/coder/websocket"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"

	"hearth/homeserver/wire"
)

// Paths on the server (see homeserver/transport).
const (
	pathWebTransport = "/hearth/v1"
	pathWebSocket    = "/hearth/v1/ws"
)

// DefaultQUICTimeout is how long Dial waits for WebTransport before it
// falls back to the WebSocket.
const DefaultQUICTimeout = 3 * time.Second

// DefaultRaceDelay is how long Dial waits for WebTransport alone before it
// also dials the WebSocket (happy eyeballs, RFC 8305's 250 ms, rounded up:
// a WebTransport dial costs two round trips, so on links under 150 ms RTT
// it wins before the WebSocket starts).
const DefaultRaceDelay = 300 * time.Millisecond

// retryMargin is added to the fallback memo's expiry in
// Conn.RetryQUICAfter, so that the redial comes after it.
const retryMargin = 10 * time.Second

// DialOptions configure Dial. The zero value trusts the system roots and
// tries WebTransport first.
type DialOptions struct {
	RootCAs        *x509.CertPool // CAs to trust (e.g. the server's DIR/ca.pem); nil: system roots
	ServerName     string         // TLS server name; default: the host of addr
	ForceWebSocket bool           // skip WebTransport
	// WebTransportOnly never uses the WebSocket: a WebTransport dial that
	// fails (or takes longer than QUICTimeout) is returned as it is, for
	// load tools that measure WebTransport and retry themselves; the
	// fallback memo is neither read nor written.
	WebTransportOnly bool
	QUICTimeout      time.Duration // WebTransport attempt before falling back; 0: DefaultQUICTimeout
	// RaceDelay is how long Dial gives WebTransport alone before it
	// starts the WebSocket beside it (the first to connect wins), unless
	// the QUIC handshake completed by then (UDP works: the WebSocket is
	// dialled only if WebTransport fails); 0: DefaultRaceDelay; negative:
	// the WebSocket only after WebTransport failed or QUICTimeout passed.
	RaceDelay time.Duration
	MaxFrame  int         // largest frame accepted from the server; 0: wire.DefaultMaxFrame
	Sockets   *SocketPool // share UDP sockets with other sessions; nil: one socket per session

	wsPingPeriod, wsPingTimeout time.Duration // tests shorten them
	memo                        *fallbackMemo // tests use their own
}

// Dial connects to the homeserver at addr (HOST:PORT) and returns the
// control stream, a *Conn. The caller writes the first frame (Login or
// Hello) at once: the server sees a WebTransport stream only when data
// arrives on it. Closing the stream ends the session.
//
// WebTransport goes first; when it has not connected within RaceDelay,
// the WebSocket is dialled beside it and the first to connect wins (the
// other is cancelled), so a network that drops UDP costs RaceDelay plus
// the WebSocket's handshake, not QUICTimeout.
//
// After WebTransport failed and the WebSocket worked for addr, Dials in the
// next five minutes use the WebSocket at once (WebTransport only if the
// WebSocket fails), so reconnecting on a UDP-blocking network is quick.
func Dial(ctx context.Context, addr string, opts DialOptions) (io.ReadWriteCloser, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("transport: dial %q: want HOST:PORT: %w", addr, err)
	}
	if opts.ServerName == "" {
		opts.ServerName = host
	}
	if opts.QUICTimeout <= 0 {
		opts.QUICTimeout = DefaultQUICTimeout
	}
	if opts.MaxFrame <= 0 {
		opts.MaxFrame = wire.DefaultMaxFrame
	}
	if opts.wsPingPeriod <= 0 {
		opts.wsPingPeriod = wsPingPeriod
	}
	if opts.wsPingTimeout <= 0 {
		opts.wsPingTimeout = wsPingTimeout
	}
	if opts.memo == nil {
		opts.memo = defaultMemo
	}
	if opts.RaceDelay == 0 {
		opts.RaceDelay = DefaultRaceDelay
	}
	if opts.WebTransportOnly && !opts.ForceWebSocket {
		qctx, cancel := context.WithTimeout(ctx, opts.QUICTimeout)
		defer cancel()
		c, err := dialWebTransport(qctx, addr, opts, nil)
		if err != nil {
			return nil, fmt.Errorf("transport: dial %s: webtransport: %w", addr, err)
		}
		return c, nil
	}
	if opts.ForceWebSocket {
		c, err := dialWebSocket(ctx, addr, opts)
		if err != nil {
			return nil, fmt.Errorf("transport: dial %s: websocket: %w", addr, err)
		}
		return c, nil
	}
	var wsErr error
	if opts.memo.blocked(addr) {
		c, err := dialWebSocket(ctx, addr, opts)
		if err == nil {
			c.retryQUIC = opts.memo.remaining(addr) + retryMargin
			return c, nil
		}
		wsErr = fmt.Errorf("websocket: %w", err)
		qctx, cancel := context.WithTimeout(ctx, opts.QUICTimeout)
		wc, err := dialWebTransport(qctx, addr, opts, nil)
		cancel()
		if err == nil {
			opts.memo.forget(addr)
			return wc, nil
		}
		return nil, fmt.Errorf("transport: dial %s: %w", addr, errors.Join(wsErr, fmt.Errorf("webtransport: %w", err)))
	}
	return race(ctx, addr, opts) // race.go
}

// sessionCache keeps TLS session tickets for the process, so that a
// reconnect (after a blackout, a lost connection) resumes the TLS session:
// no certificate chain in the server's flight (fewer packets to lose) and
// no signature to verify. It does not save a round trip (see
// docs/transport.md, "Round trips"). Not persisted: a new process makes a
// full handshake.
var sessionCache = tls.NewLRUClientSessionCache(64)

func (o DialOptions) tlsConfig(protos ...string) *tls.Config {
	return &tls.Config{RootCAs: o.RootCAs, ServerName: o.ServerName, MinVersion: tls.VersionTLS13, NextProtos: protos,
		ClientSessionCache: sessionCache}
}

// Flow-control windows and timers for a client: small windows (one chat
// session rarely has much in flight; auto-tuning grows them when busy),
// keep-alives well inside common NAT binding timeouts. The idle timeout
// (the smaller of both sides' wins) is how long a client takes to notice a
// server that died without closing: a restarted server cannot answer the
// old connection, so the client waits for this timeout before it redials.
const (
	keepAlivePeriod     = 6 * time.Second
	idleTimeout         = 20 * time.Second
	initialStreamWindow = 16 << 10
	maxStreamWindow     = 2 << 20
	initialConnWindow   = 32 << 10
	maxConnWindow       = 4 << 20
)

func quicConfig() *quic.Config {
	return &quic.Config{
		MaxIdleTimeout:                   idleTimeout,
		KeepAlivePeriod:                  keepAlivePeriod,
		InitialStreamReceiveWindow:       initialStreamWindow,
		MaxStreamReceiveWindow:           maxStreamWindow,
		InitialConnectionReceiveWindow:   initialConnWindow,
		MaxConnectionReceiveWindow:       maxConnWindow,
		MaxIncomingStreams:               16,
		MaxIncomingUniStreams:            16,
		EnableDatagrams:                  true,
		EnableStreamResetPartialDelivery: true,
	}
}

// dialWebTransport dials the WebTransport session and its control stream.
// answered, if not nil, is closed once the QUIC handshake completed (the
// server answers over UDP), before the CONNECT.
func dialWebTransport(ctx context.Context, addr string, opts DialOptions, answered chan<- struct{}) (*Conn, error) {
	tr := &webtransport.Transport{
		TLSClientConfig: opts.tlsConfig(http3.NextProtoH3),
		QUICConfig:      quicConfig(),
	}
	dial := quic.DialAddrEarly
	if opts.Sockets != nil {
		dial = opts.Sockets.dial
	}
	tr.DialAddr = dial
	if answered != nil {
		tr.DialAddr = func(ctx context.Context, addr string, tlsConf *tls.Config, conf *quic.Config) (*quic.Conn, error) {
			qc, err := dial(ctx, addr, tlsConf, conf)
			if err == nil {
				go func() {
					select {
					case <-qc.HandshakeComplete():
						close(answered)
					case <-qc.Context().Done():
					}
				}()
			}
			return qc, err
		}
	}
	_, sess, err := tr.Dial(ctx, "https://"+addr+pathWebTransport, nil)
	if err != nil {
		return nil, err
	}
	str, err := sess.OpenStreamSync(ctx)
	if err != nil {
		sess.CloseWithError(0, "")
		return nil, fmt.Errorf("open control stream: %w", err)
	}
	// webtransport-go sends the CONNECT only after the QUIC handshake
	// completed and the server's SETTINGS arrived (they come in the
	// server's first 1-RTT flight), then waits for the response: one round
	// trip for the handshake, one for the CONNECT; 0-RTT cannot shorten it.
	st := sess.SessionState().ConnectionState
	return &Conn{rwc: &wtConn{sess: sess, str: str}, protocol: ProtocolWebTransport,
		handshake: 2, resumed: st.TLS.DidResume}, nil
}

// wsSlack is the frame's varint length prefix a message carries beyond MaxFrame.
const wsSlack = 16

func dialWebSocket(ctx context.Context, addr string, opts DialOptions) (*Conn, error) {
	hc := &http.Client{Transport: &http.Transport{
		TLSClientConfig:     opts.tlsConfig("http/1.1"),
		TLSHandshakeTimeout: 10 * time.Second,
	}}
	c, _, err := websocket.Dial(ctx, "wss://"+addr+pathWebSocket, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		return nil, err
	}
	// Reads and writes end with Close, not with the dial context.
	nc := websocket.NetConn(context.Background(), c, websocket.MessageBinary)
	c.SetReadLimit(int64(opts.MaxFrame) + wsSlack) // after NetConn, which lifts the limit
	// TCP handshake, TLS 1.3 handshake, HTTP upgrade: three round trips.
	return &Conn{rwc: newWSConn(c, nc, opts.wsPingPeriod, opts.wsPingTimeout), protocol: ProtocolWebSocket, handshake: 3}, nil
}
