//go:build !js

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

// SendDatagram sends b as one unreliable datagram (QUIC only; at most
// about 1,100 bytes). Typing and presence use it where available.
func (c *Conn) SendDatagram(b []byte) error {
	switch q := c.rwc.(type) {
	case *wtConn:
		return q.sess.SendDatagram(b)
	case *nativeConn:
		return q.SendDatagram(b)
	}
	return ErrNoDatagrams
}

// ReceiveDatagram returns the next datagram from the server (QUIC only).
func (c *Conn) ReceiveDatagram(ctx context.Context) ([]byte, error) {
	switch q := c.rwc.(type) {
	case *wtConn:
		return q.sess.ReceiveDatagram(ctx)
	case *nativeConn:
		return q.ReceiveDatagram(ctx)
	}
	return nil, ErrNoDatagrams
}

// nativeSettled is Settled's channel for a native QUIC Conn; nil for others.
func (c *Conn) nativeSettled() <-chan struct{} {
	if nc, ok := c.rwc.(*nativeConn); ok {
		return nc.settled
	}
	return nil
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
	reads   lastReads
	readEOF atomic.Bool
	once    sync.Once
}

func (c *wtConn) Read(p []byte) (int, error) {
	n, err := c.reads.read(c.str, p)
	if errors.Is(err, io.EOF) {
		c.readEOF.Store(true)
	}
	return n, err
}

func (c *wtConn) Write(p []byte) (int, error) { return c.str.Write(p) }

func (c *wtConn) SetWriteDeadline(t time.Time) error { return c.str.SetWriteDeadline(t) }

func (c *wtConn) Close() error {
	c.once.Do(func() {
		c.reads.stop()
		c.str.Close()
		if !c.readEOF.Load() {
			// Waits here, not in the background: a client often exits right after.
			c.str.SetReadDeadline(time.Now().Add(lingerTimeout))
			c.reads.drain(c.str)
		}
		c.sess.CloseWithError(0, "")
	})
	return nil
}
