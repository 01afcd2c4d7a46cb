package transport

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// NextProtoHearth is the ALPN of Hearth's native QUIC transport: native
// clients (the CLI, the Go client library) speak the wire frames directly
// on a QUIC connection's first bidirectional stream, without HTTP/3 and
// WebTransport in between. Browsers keep WebTransport (ALPN "h3") on the
// same UDP port.
const NextProtoHearth = "hearth/1"

// TransportQUIC is the SessionsByTransport key of native QUIC sessions.
const TransportQUIC = "quic"

// EarlyDataMaxAge is how old a session ticket may be for the server to
// accept 0-RTT data with it. A replay of 0-RTT data must use the ticket of
// the original connection, so a replayed Send arrives at most this long
// after the original, while the homeserver still holds the original's
// deduplication record (kept at least 24 h): the replay returns the first
// result and stores nothing. An older ticket still resumes the TLS session,
// in one round trip, without 0-RTT.
const EarlyDataMaxAge = 12 * time.Hour

// EarlyConn is implemented by control streams whose first frames may
// arrive as 0-RTT data (native QUIC): they may be replayed by an attacker
// until the handshake completes. The StreamServer acts only on replay-safe
// requests before HandshakeComplete is closed (docs/transport.md, "0-RTT").
type EarlyConn interface {
	HandshakeComplete() <-chan struct{}
}

// serveNative serves a connection that negotiated NextProtoHearth: its
// first bidirectional stream is the control stream. The connection may
// still be in its handshake (0-RTT): the StreamServer sees that through
// EarlyConn.
//
// The session runs on a goroutine of its own, started once the stream is
// there, so that its idle reader waits with this function's frame not
// beneath it (server.go, serveSession).
func (s *Server) serveNative(conn *quic.Conn) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ReadHeaderTimeout)
	str, err := conn.AcceptStream(ctx)
	cancel()
	if err != nil {
		s.log.Debug("native QUIC connection without control stream", "remote", conn.RemoteAddr(), "err", err)
		conn.CloseWithError(1, "no control stream")
		s.packets.ended(conn)
		return
	}
	go s.serveSession(conn.Context(), &nativeConn{conn: conn, str: str, packets: &s.packets}, conn.RemoteAddr().String(), TransportQUIC)
}

// nativeConn is a native QUIC connection's control stream. Closing it
// follows the WebTransport rule (webtransport.go): FIN after the queued
// data, then the client closes the connection once it read that FIN (at
// most lingerTimeout, then the server closes it).
type nativeConn struct {
	conn    *quic.Conn
	str     *quic.Stream
	packets *packetCounter // counts conn until Close has closed it
	once    sync.Once
}

var (
	_ io.ReadWriteCloser = (*nativeConn)(nil)
	_ DatagramConn       = (*nativeConn)(nil)
	_ EarlyConn          = (*nativeConn)(nil)
)

func (c *nativeConn) Read(p []byte) (int, error)  { return c.str.Read(p) }
func (c *nativeConn) Write(p []byte) (int, error) { return c.str.Write(p) }

// SendDatagram sends b as one QUIC datagram.
func (c *nativeConn) SendDatagram(b []byte) error { return c.conn.SendDatagram(b) }

// ReceiveDatagram returns the connection's next datagram.
func (c *nativeConn) ReceiveDatagram(ctx context.Context) ([]byte, error) {
	return c.conn.ReceiveDatagram(ctx)
}

// HandshakeComplete is closed once the client's handshake completed.
func (c *nativeConn) HandshakeComplete() <-chan struct{} { return c.conn.HandshakeComplete() }

func (c *nativeConn) Close() error {
	c.once.Do(func() {
		c.str.Close()
		t := time.NewTimer(lingerTimeout)
		defer t.Stop()
		select {
		case <-c.conn.Context().Done():
		case <-t.C:
		}
		c.conn.CloseWithError(0, "") // returns once the connection is closed
		c.packets.ended(c.conn)
	})
	return nil
}

// quicTLSConfig is the TLS configuration of the QUIC listener: ALPN "h3"
// (browsers: HTTP/3, WebTransport, federation) and NextProtoHearth (native
// clients), and session tickets that allow 0-RTT only on NextProtoHearth
// connections and only while younger than EarlyDataMaxAge (early0RTT).
// http3 does not tell its handlers whether a request came in 0-RTT, so
// its tickets carry no 0-RTT permission. A GetConfigForClient of base
// (ACME's TLS-ALPN-01 answer, only ever asked for over TCP) is kept as it is.
func quicTLSConfig(base *tls.Config, now func() time.Time) *tls.Config {
	// Initialize the automatic ticket keys before cloning, so that every
	// clone (quic-go clones per connection) shares them.
	_, _ = base.DecryptTicket(nil, tls.ConnectionState{})
	c := base.Clone()
	if c.MinVersion < tls.VersionTLS13 {
		c.MinVersion = tls.VersionTLS13 // QUIC is TLS 1.3 only
	}
	c.NextProtos = []string{http3.NextProtoH3, NextProtoHearth}
	keys := c.Clone() // encrypts and decrypts tickets with the shared keys
	c.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		if cs.NegotiatedProtocol != NextProtoHearth {
			ss.EarlyData = false
		}
		ss.Extra = append(ss.Extra, ticketIssued(now()))
		return keys.EncryptTicket(cs, ss)
	}
	c.UnwrapSession = func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		ss, err := keys.DecryptTicket(identity, cs)
		if ss == nil || err != nil {
			return ss, err
		}
		if issued, ok := ticketIssuedAt(ss.Extra); !ok || now().Sub(issued) > EarlyDataMaxAge || now().Before(issued) {
			ss.EarlyData = false
		}
		return ss, nil
	}
	return c
}

// ticketPrefix marks the Extra entry of a session ticket that holds its
// issue time (8 bytes, Unix milliseconds, big endian); quic-go and http3
// add entries of their own with their own prefixes.
const ticketPrefix = "hearth-issued:"

func ticketIssued(t time.Time) []byte {
	b := make([]byte, 0, len(ticketPrefix)+8)
	b = append(b, ticketPrefix...)
	return binary.BigEndian.AppendUint64(b, uint64(t.UnixMilli()))
}

// ticketIssuedAt finds the issue time among a ticket's Extra entries. The
// ticket was encrypted by this server, but it is read defensively: a
// missing or malformed entry means "unknown" (no 0-RTT).
func ticketIssuedAt(extra [][]byte) (time.Time, bool) {
	for _, e := range extra {
		if len(e) == len(ticketPrefix)+8 && string(e[:len(ticketPrefix)]) == ticketPrefix {
			ms := binary.BigEndian.Uint64(e[len(ticketPrefix):])
			if ms > 1<<62 {
				return time.Time{}, false
			}
			return time.UnixMilli(int64(ms)), true
		}
	}
	return time.Time{}, false
}
