package transport

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/webtransport-go"
)

// Protocols a Conn can run over.
const (
	ProtocolWebTransport = "webtransport"
	ProtocolWebSocket    = "websocket"
)

// Conn is a control stream to the homeserver. Dial returns one as an
// io.ReadWriteCloser; assert to *Conn for Protocol.
type Conn struct {
	rwc      io.ReadWriteCloser
	protocol string

	handshake int  // round trips the dial waited for (HandshakeRoundTrips)
	resumed   bool // TLS session resumed (WebTransport; the WebSocket's is not visible through its library)
	raced     bool // the WebSocket was dialled beside a slow WebTransport
	// retryQUIC: a WebSocket chosen because WebTransport failed or was
	// slow (not forced) is worth leaving for WebTransport after this long.
	retryQUIC time.Duration
}

var _ io.ReadWriteCloser = (*Conn)(nil)

func (c *Conn) Read(p []byte) (int, error)  { return c.rwc.Read(p) }
func (c *Conn) Write(p []byte) (int, error) { return c.rwc.Write(p) }

// Close ends the stream; see Dial for how a session ends cleanly.
func (c *Conn) Close() error { return c.rwc.Close() }

// Protocol is ProtocolWebTransport or ProtocolWebSocket.
func (c *Conn) Protocol() string { return c.protocol }

// HandshakeRoundTrips is the number of round trips the winning dial waited
// for before the stream could carry a frame: 2 for WebTransport (QUIC
// handshake, CONNECT), 3 for the WebSocket (TCP, TLS, HTTP upgrade).
// client/session counts requests from there.
func (c *Conn) HandshakeRoundTrips() int { return c.handshake }

// Resumed reports whether the TLS handshake resumed an earlier session.
func (c *Conn) Resumed() bool { return c.resumed }

// Raced reports whether the WebSocket was dialled because WebTransport had
// not connected within DialOptions.RaceDelay.
func (c *Conn) Raced() bool { return c.raced }

// RetryQUICAfter is, for a WebSocket that Dial chose because WebTransport
// failed or was slow (not one forced by ForceWebSocket), how long after
// the dial a new Dial will try WebTransport first again (the fallback memo
// has expired by then); 0 otherwise. A long-lived session uses it to move
// back to QUIC (client/session).
func (c *Conn) RetryQUICAfter() time.Duration { return c.retryQUIC }

// ErrNoDatagrams is returned by the datagram methods of a WebSocket Conn.
var ErrNoDatagrams = errors.New("transport: datagrams need WebTransport; this connection is a WebSocket")

// SendDatagram sends b as one unreliable datagram (WebTransport only; at
// most about 1,100 bytes). Typing and presence use it where available.
func (c *Conn) SendDatagram(b []byte) error {
	wt, ok := c.rwc.(*wtConn)
	if !ok {
		return ErrNoDatagrams
	}
	return wt.sess.SendDatagram(b)
}

// ReceiveDatagram returns the next datagram from the server (WebTransport only).
func (c *Conn) ReceiveDatagram(ctx context.Context) ([]byte, error) {
	wt, ok := c.rwc.(*wtConn)
	if !ok {
		return nil, ErrNoDatagrams
	}
	return wt.sess.ReceiveDatagram(ctx)
}

// lingerTimeout bounds how long Close waits for the server's FIN.
const lingerTimeout = 3 * time.Second

// wtConn is a WebTransport stream whose Close also ends the session.
//
// Closing a session resets its streams and may overtake data still in
// flight, so the client, and only the client, closes the session, and only
// after it has read the server's FIN (see homeserver/transport). Close sends
// FIN, reads and discards the rest until the server's FIN (at most
// lingerTimeout), then closes the session, which closes the QUIC connection
// dialled for it.
type wtConn struct {
	sess    *webtransport.Session
	str     *webtransport.Stream
	readEOF atomic.Bool
	once    sync.Once
}

func (c *wtConn) Read(p []byte) (int, error) {
	n, err := c.str.Read(p)
	if errors.Is(err, io.EOF) {
		c.readEOF.Store(true)
	}
	return n, err
}

func (c *wtConn) Write(p []byte) (int, error) { return c.str.Write(p) }

func (c *wtConn) Close() error {
	c.once.Do(func() {
		c.str.Close()
		if !c.readEOF.Load() {
			// Waits here, not in the background: a client often exits right after.
			c.str.SetReadDeadline(time.Now().Add(lingerTimeout))
			io.Copy(io.Discard, c.str)
		}
		c.sess.CloseWithError(0, "")
	})
	return nil
}
