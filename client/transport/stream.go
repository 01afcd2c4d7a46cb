package transport

import (
	"errors"
	"io"
	"sync"
	"time"
)

// Protocols a Conn can run over.
const (
	ProtocolWebTransport = "webtransport"
	ProtocolWebSocket    = "websocket"
	ProtocolQUIC         = "quic" // native QUIC, ALPN NextProtoHearth (native.go)
)

// Conn is a control stream to the homeserver. Dial returns one as an
// io.ReadWriteCloser; assert to *Conn for Protocol.
type Conn struct {
	rwc io.ReadWriteCloser

	// The dial's facts. A native QUIC Conn dialled with 0-RTT may change
	// them once, when it settles (native.go): hence the lock.
	mu        sync.Mutex
	protocol  string
	handshake int  // round trips the dial waited for (HandshakeRoundTrips)
	resumed   bool // TLS session resumed (QUIC; the WebSocket's is not visible through its library)
	raced     bool // the WebSocket was dialled beside a slow QUIC dial
	earlyData bool // the first bytes went out as 0-RTT data (native QUIC)
	rejected  bool // the server rejected them: they were sent again after the handshake
	// retryQUIC: a WebSocket chosen because QUIC failed or was slow (not
	// forced) is worth leaving for QUIC after this long.
	retryQUIC time.Duration
}

// settle records how a 0-RTT dial ended (native.go).
func (c *Conn) settle(protocol string, handshake int, raced, rejected bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.protocol, c.handshake, c.raced, c.rejected = protocol, handshake, raced, rejected
	if protocol != ProtocolQUIC {
		c.earlyData, c.resumed = false, false
	}
}

func (c *Conn) setRetryQUIC(d time.Duration) {
	c.mu.Lock()
	c.retryQUIC = d
	c.mu.Unlock()
}

var _ io.ReadWriteCloser = (*Conn)(nil)

func (c *Conn) Read(p []byte) (int, error)  { return c.rwc.Read(p) }
func (c *Conn) Write(p []byte) (int, error) { return c.rwc.Write(p) }

// Close ends the stream; see Dial for how a session ends cleanly.
func (c *Conn) Close() error { return c.rwc.Close() }

// SetWriteDeadline makes a Write blocked past t (flow control: the server
// reads nothing) return an error, as net.Conn's does; a zero t clears it.
// client/session uses it to end a write at once when its caller gives up.
// A native QUIC stream that moves after the call (a rejected 0-RTT, the
// WebSocket) leaves the deadline behind. ErrUnsupported in the browser.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	if d, ok := c.rwc.(interface{ SetWriteDeadline(time.Time) error }); ok {
		return d.SetWriteDeadline(t)
	}
	return errors.ErrUnsupported
}

// Protocol is ProtocolQUIC, ProtocolWebTransport or ProtocolWebSocket.
func (c *Conn) Protocol() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.protocol
}

// HandshakeRoundTrips is the number of round trips the winning dial waited
// for before the stream could carry a frame: 0 for native QUIC with 0-RTT
// (the first frames ride in the first flight), 1 for native QUIC without,
// 2 for WebTransport (QUIC handshake, CONNECT), 3 for the WebSocket (TCP,
// TLS, HTTP upgrade). client/session counts requests from there. A 0-RTT
// dial whose data the server rejected, or that moved to the WebSocket,
// reports 1 or 3 once that is known.
func (c *Conn) HandshakeRoundTrips() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.handshake
}

// Resumed reports whether the TLS handshake resumed an earlier session.
func (c *Conn) Resumed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resumed
}

// Raced reports whether the WebSocket was dialled because QUIC had not
// connected within DialOptions.RaceDelay.
func (c *Conn) Raced() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.raced
}

// EarlyData reports whether the first bytes written went out as 0-RTT
// data on a native QUIC connection and the server accepted them (so far:
// it is known once the handshake completed).
func (c *Conn) EarlyData() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.earlyData && !c.rejected
}

// Settled is closed once the connection is final: at once for every dial
// but native QUIC with 0-RTT, whose first bytes may still be written again
// (0-RTT rejected) or move to the WebSocket until its handshake completed.
func (c *Conn) Settled() <-chan struct{} {
	if ch := c.nativeSettled(); ch != nil {
		return ch
	}
	return closedChan
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// EarlyRejected reports whether the server rejected the 0-RTT data (an
// expired or unknown ticket): it was sent again after the handshake.
func (c *Conn) EarlyRejected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rejected
}

// RetryQUICAfter is, for a WebSocket that Dial chose because WebTransport
// failed or was slow (not one forced by ForceWebSocket), how long after
// the dial a new Dial will try WebTransport first again (the fallback memo
// has expired by then); 0 otherwise. A long-lived session uses it to move
// back to QUIC (client/session).
func (c *Conn) RetryQUICAfter() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.retryQUIC
}

// ErrNoDatagrams is returned by the datagram methods of a WebSocket Conn.
var ErrNoDatagrams = errors.New("transport: datagrams need QUIC; this connection is a WebSocket")
