//go:build !js

package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// NextProtoHearth is the ALPN of Hearth's native QUIC transport (the
// server's homeserver/transport.NextProtoHearth): the wire frames go
// directly on the QUIC connection's first bidirectional stream, with no
// HTTP/3 or WebTransport in between, so nothing waits for a CONNECT.
const NextProtoHearth = "hearth/1"

// nativeSessionCache keeps the process's TLS session tickets for native
// QUIC when DialOptions.SessionCache is nil. Tickets of native connections
// permit 0-RTT, those of WebTransport connections do not, so the two
// transports keep separate caches.
var nativeSessionCache = tls.NewLRUClientSessionCache(64)

// dialNative dials a native QUIC connection and opens its control stream.
//
// With a session ticket that permits 0-RTT (a returning device), the
// connection is returned at once, before the handshake completed: what is
// written first goes out as 0-RTT data in the first flight, so Hello, Sync
// and the requests pipelined behind them are answered one round trip after
// the dial started. The server acts only on replay-safe requests before
// the handshake completed (homeserver, early.go). Until the connection is
// settled (settle) the bytes written are recorded: when the server rejects
// 0-RTT they are written again on the 1-RTT stream; when fallback is set
// and the handshake has not completed within RaceDelay, the WebSocket is
// dialled beside it and, if it connects first, the stream moves there and
// the record is written on it. Either way the server acted on them at most
// once: it cannot complete a handshake the client never completed.
//
// Without such a ticket the dial returns when the handshake completed
// (one round trip). answered, if not nil, is closed once it did.
func dialNative(ctx context.Context, addr string, opts DialOptions, answered chan<- struct{}, fallback func(context.Context) (*Conn, error)) (*Conn, error) {
	cache := opts.SessionCache
	if cache == nil {
		cache = nativeSessionCache
	}
	tlsConf := &tls.Config{RootCAs: opts.RootCAs, ServerName: opts.ServerName, MinVersion: tls.VersionTLS13,
		NextProtos: []string{NextProtoHearth}, ClientSessionCache: cache}
	dial := quic.DialAddrEarly
	if opts.Sockets != nil {
		dial = opts.Sockets.dial
	}
	qc, err := dial(ctx, addr, tlsConf, quicConfig())
	if err != nil {
		return nil, err
	}
	if beforeOpenStream != nil {
		beforeOpenStream(qc)
	}
	str, err := qc.OpenStream()
	rejected := false
	if errors.Is(err, quic.Err0RTTRejected) {
		// The server's answer came before the stream was opened: the
		// handshake went on without 0-RTT, on the connection quic-go
		// made for it. Nothing was written yet.
		if next, nerr := qc.NextConnection(ctx); nerr == nil {
			qc, rejected = next, true
			str, err = qc.OpenStream()
		}
	}
	if err != nil {
		qc.CloseWithError(0, "")
		return nil, fmt.Errorf("open control stream: %w", err)
	}
	if answered != nil {
		go func() {
			select {
			case <-qc.HandshakeComplete():
				close(answered)
			case <-qc.Context().Done():
			}
		}()
	}
	nc := &nativeConn{qc: qc, str: str, settled: make(chan struct{})}
	c := &Conn{rwc: nc, protocol: ProtocolQUIC, handshake: 1, rejected: rejected}
	select {
	case <-qc.HandshakeComplete():
		close(nc.settled)
		c.resumed = qc.ConnectionState().TLS.DidResume
		return c, nil
	default:
	}
	// 0-RTT: the first flight carries what the caller writes now.
	nc.early, nc.owner = true, c
	c.handshake, c.resumed, c.earlyData = 0, true, true
	go nc.settle(addr, opts, fallback)
	return c, nil
}

// beforeOpenStream, when set (tests), runs between a native dial and the
// opening of its control stream.
var beforeOpenStream func(*quic.Conn)

// wsFallbackTimeout bounds the WebSocket dial a 0-RTT stream races.
const wsFallbackTimeout = 10 * time.Second

// nativeConn is a native QUIC control stream; while early (0-RTT, not
// settled) it may move to a new stream or to the WebSocket (dialNative).
//
// Closing follows the WebTransport rule (wtConn): FIN, read to the
// server's FIN (at most lingerTimeout), then close the connection.
type nativeConn struct {
	qc      *quic.Conn    // guarded by mu once the dial returned (adopt replaces it)
	owner   *Conn         // set while early: settle updates its facts
	settled chan struct{} // closed once the stream is final

	// wmu orders writes around a move: what was recorded is written on
	// the new stream or the WebSocket before anything written later.
	wmu sync.Mutex
	// mu guards the fields below; it is never held across network I/O,
	// so that reads go on while the record is written again.
	mu    sync.Mutex
	str   *quic.Stream
	ws    *Conn // the WebSocket the stream moved to, if it did
	early bool  // recording writes in rec
	rec   []byte
	fail  error // settling failed: the connection is dead

	reads   lastReads
	readEOF atomic.Bool
	closing atomic.Bool // Close was called: settling stops
	once    sync.Once
}

var _ io.ReadWriteCloser = (*nativeConn)(nil)

// current returns what to read and write now and whether it may still move.
func (c *nativeConn) current() (io.ReadWriter, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ws != nil {
		return c.ws, false
	}
	return c.str, c.early
}

func (c *nativeConn) Read(p []byte) (int, error) {
	for {
		r, early := c.current()
		n, err := c.reads.read(r, p)
		if err != nil && n == 0 && early && !c.closing.Load() {
			<-c.settled
			if c.failed() == nil {
				continue // on the stream it settled on
			}
		}
		if errors.Is(err, io.EOF) {
			c.readEOF.Store(true)
		}
		return n, err
	}
}

func (c *nativeConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	c.mu.Lock()
	early, str, ws := c.early, c.str, c.ws
	if early {
		c.rec = append(c.rec, p...)
	}
	c.mu.Unlock()
	if !early {
		defer c.wmu.Unlock()
		if ws != nil {
			return ws.Write(p)
		}
		return str.Write(p)
	}
	_, err := str.Write(p)
	c.wmu.Unlock()
	if err != nil {
		// Rejected 0-RTT, or the stream given up for the WebSocket:
		// settle writes the record, p included, where the stream goes.
		<-c.settled
		c.mu.Lock()
		moved, ferr := c.ws != nil || c.str != str, c.fail
		c.mu.Unlock()
		if ferr != nil {
			return 0, ferr
		}
		if !moved {
			return 0, err // the connection failed after its 0-RTT was accepted
		}
	}
	return len(p), nil
}

// SetWriteDeadline sets the write deadline of the stream written now.
func (c *nativeConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	str, ws := c.str, c.ws
	c.mu.Unlock()
	if ws != nil {
		return ws.SetWriteDeadline(t)
	}
	return str.SetWriteDeadline(t)
}

func (c *nativeConn) failed() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fail
}

// SendDatagram sends b as one QUIC datagram.
func (c *nativeConn) SendDatagram(b []byte) error {
	if ws := c.moved(); ws != nil {
		return ErrNoDatagrams
	}
	return c.conn().SendDatagram(b)
}

// ReceiveDatagram returns the next datagram from the server.
// After a redial (adopt) it goes on on the new connection.
func (c *nativeConn) ReceiveDatagram(ctx context.Context) ([]byte, error) {
	for {
		if ws := c.moved(); ws != nil {
			return nil, ErrNoDatagrams
		}
		qc := c.conn()
		b, err := qc.ReceiveDatagram(ctx)
		if err != nil && ctx.Err() == nil {
			<-c.settled
			if c.conn() != qc && c.failed() == nil {
				continue
			}
		}
		return b, err
	}
}

// conn is the QUIC connection the stream is on now (adopt may change it).
func (c *nativeConn) conn() *quic.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.qc
}

func (c *nativeConn) moved() *Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ws
}

func (c *nativeConn) Close() error {
	c.once.Do(func() {
		c.closing.Store(true)
		<-c.settledOrNow()
		if ws := c.moved(); ws != nil {
			ws.Close()
			return
		}
		c.mu.Lock()
		str := c.str
		c.mu.Unlock()
		c.reads.stop()
		str.Close()
		if !c.readEOF.Load() && c.failed() == nil {
			// Waits here, not in the background: a client often exits right after.
			str.SetReadDeadline(time.Now().Add(lingerTimeout))
			c.reads.drain(str)
		}
		c.conn().CloseWithError(0, "")
	})
	return nil
}

// settledOrNow lets Close go on at once when the stream has not settled:
// closing the connection then ends the settling.
func (c *nativeConn) settledOrNow() <-chan struct{} {
	select {
	case <-c.settled:
		return c.settled
	default:
	}
	c.conn().CloseWithError(0, "")
	return c.settled
}

// settle waits for the 0-RTT connection's handshake and makes the stream
// final: the same stream when the server accepted 0-RTT; a new stream
// with the record written on it when it rejected it; or, with a fallback,
// the WebSocket when the handshake has not completed within RaceDelay and
// the WebSocket connected first. Without a fallback (QUICOnly) a handshake
// that failed or has not completed within QUICTimeout is dialled again,
// without 0-RTT, and the record written there (adopt): a handshake can
// fail where a later one works (the client's port changed during it, and
// the server answers handshake packets at the first address). When that
// fails too, the stream fails.
func (c *nativeConn) settle(addr string, opts DialOptions, fallback func(context.Context) (*Conn, error)) {
	defer close(c.settled)
	giveUp := time.NewTimer(opts.QUICTimeout)
	defer giveUp.Stop()
	redial := fallback == nil
	fbName := "websocket"
	if redial {
		fallback, fbName = c.redialer(addr, opts), "quic again"
	}
	var race <-chan time.Time
	if !redial && opts.RaceDelay > 0 {
		t := time.NewTimer(opts.RaceDelay)
		defer t.Stop()
		race = t.C
	}
	// The caller's dial context has ended by now: the WebSocket gets a
	// bound of its own.
	wsCtx, wsCancel := context.WithTimeout(context.Background(), wsFallbackTimeout)
	defer wsCancel()
	wsDone := make(chan dialResult, 1)
	wsStarted, quicDead := false, false
	var quicErr, wsErr error
	startWS := func() {
		if wsStarted || fallback == nil {
			return
		}
		wsStarted = true
		go func() {
			ws, err := fallback(wsCtx)
			wsDone <- dialResult{c: ws, err: err, ws: true}
		}()
	}
	hs, dead := c.qc.HandshakeComplete(), c.qc.Context().Done()
	for {
		select {
		case <-hs:
			if wsStarted && wsErr == nil { // the WebSocket dial is still out
				wsCancel()
				go closeLate(wsDone)
			}
			if err := c.afterHandshake(); err != nil {
				c.setFail(err)
			}
			return
		case <-dead:
			hs, dead, race, quicDead = nil, nil, nil, true
			quicErr = context.Cause(c.qc.Context())
			if c.closing.Load() {
				c.setFail(net.ErrClosed)
				return
			}
			startWS()
		case <-race:
			race = nil
			startWS()
		case <-giveUp.C:
			quicDead, quicErr = true, fmt.Errorf("QUIC handshake not completed within %v", opts.QUICTimeout)
			c.qc.CloseWithError(0, "handshake timed out") // ends the 0-RTT stream's reads and writes
			hs, dead, race = nil, nil, nil
			startWS()
		case r := <-wsDone:
			if r.err == nil {
				if redial {
					c.adopt(r.c)
				} else {
					c.moveTo(r.c, addr, opts)
				}
				return
			}
			wsErr = r.err
		}
		switch {
		case !quicDead:
		case !wsStarted:
			c.setFail(fmt.Errorf("%w: quic: %w", io.ErrUnexpectedEOF, quicErr))
			return
		case wsErr != nil:
			c.setFail(fmt.Errorf("%w: quic: %w; %s: %w", io.ErrUnexpectedEOF, quicErr, fbName, wsErr))
			return
		}
	}
}

// afterHandshake settles on QUIC once the handshake completed: nothing to
// do when the server accepted 0-RTT; after a rejection the record is
// written again on the connection's new stream.
func (c *nativeConn) afterHandshake() error {
	if c.qc.ConnectionState().Used0RTT {
		c.mu.Lock()
		c.early, c.rec = false, nil
		c.mu.Unlock()
		return nil
	}
	// Rejected: the old stream's writes fail (Err0RTTRejected), which
	// releases wmu; later writes wait until the record went out again.
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	rec := c.rec
	c.rec = nil
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), lingerTimeout)
	defer cancel()
	qc, err := c.qc.NextConnection(ctx)
	if err != nil {
		return fmt.Errorf("0-RTT rejected: %w", err)
	}
	str, err := qc.OpenStream()
	if err != nil {
		return fmt.Errorf("0-RTT rejected: open control stream: %w", err)
	}
	if _, err := str.Write(rec); err != nil {
		return fmt.Errorf("0-RTT rejected: resend: %w", err)
	}
	c.mu.Lock()
	c.str, c.early = str, false
	c.mu.Unlock()
	c.owner.settle(ProtocolQUIC, 1, false, true)
	return nil
}

// moveTo makes the WebSocket ws the stream: the QUIC connection is closed
// (it never completed its handshake, so the server acted on none of the
// 0-RTT requests it may have held, and those it served are replay-safe)
// and the record is written on ws.
func (c *nativeConn) moveTo(ws *Conn, addr string, opts DialOptions) {
	c.qc.CloseWithError(0, "moved to the WebSocket") // fails the writes on the QUIC stream, releasing wmu
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	rec := c.rec
	c.rec = nil
	c.mu.Unlock()
	if len(rec) == 0 {
		// nothing to write again
	} else if _, err := ws.Write(rec); err != nil {
		ws.Close()
		c.setFail(fmt.Errorf("%w: resend on the WebSocket: %w", io.ErrUnexpectedEOF, err))
		return
	}
	c.mu.Lock()
	c.ws, c.early = ws, false
	c.mu.Unlock()
	if opts.memo != nil {
		opts.memo.remember(addr)
	}
	c.owner.settle(ProtocolWebSocket, ws.HandshakeRoundTrips(), true, false)
	c.owner.setRetryQUIC(quicBlockedFor + retryMargin)
}

// redialer returns settle's fallback for QUICOnly: a native dial without
// 0-RTT (no session ticket), which returns once its handshake completed,
// within QUICTimeout.
func (c *nativeConn) redialer(addr string, opts DialOptions) func(context.Context) (*Conn, error) {
	return func(ctx context.Context) (*Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, opts.QUICTimeout)
		defer cancel()
		o := opts
		o.SessionCache = noTickets{}
		return dialNative(ctx, addr, o, nil, nil)
	}
}

// adopt makes the stream of n, a native connection dialled again after
// the 0-RTT connection's handshake failed, the stream: the record is
// written there, and reads, writes and datagrams go there. The failed
// connection never completed its handshake, so the server acted on none
// of the requests it may have held but the replay-safe ones.
func (c *nativeConn) adopt(n *Conn) {
	nn, ok := n.rwc.(*nativeConn)
	if !ok || c.closing.Load() {
		n.Close()
		c.setFail(net.ErrClosed)
		return
	}
	c.qc.CloseWithError(0, "handshake failed; dialled again") // fails writes on the old stream, releasing wmu
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	rec := c.rec
	c.rec = nil
	c.mu.Unlock()
	if len(rec) > 0 {
		if _, err := nn.str.Write(rec); err != nil {
			n.Close()
			c.setFail(fmt.Errorf("%w: resend after dialling again: %w", io.ErrUnexpectedEOF, err))
			return
		}
	}
	c.mu.Lock()
	c.qc, c.str, c.early = nn.qc, nn.str, false
	c.mu.Unlock()
	// Its 0-RTT data was not used: counted like a rejection.
	c.owner.settle(ProtocolQUIC, 1, false, true)
}

// noTickets is a session cache that holds nothing: a dial with it makes a
// full handshake (no 0-RTT).
type noTickets struct{}

func (noTickets) Get(string) (*tls.ClientSessionState, bool) { return nil, false }
func (noTickets) Put(string, *tls.ClientSessionState)        {}

func (c *nativeConn) setFail(err error) {
	c.mu.Lock()
	c.fail = err
	c.early = false
	qc := c.qc
	c.mu.Unlock()
	qc.CloseWithError(0, "")
}
