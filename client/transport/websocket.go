//go:build !js

package transport

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// WebSocket keep-alive: a ping every wsPingPeriod keeps NAT and proxy
// state alive, and a missing pong within wsPingTimeout marks the TCP
// connection dead, so the reader gets an error and the client reconnects
// instead of waiting on a half-open connection.
const (
	wsPingPeriod  = 25 * time.Second
	wsPingTimeout = 15 * time.Second
)

// wsConn is a WebSocket connection as a byte stream with keep-alive pings.
// Pongs are processed by the reader, which a client always runs.
type wsConn struct {
	net.Conn
	c    *websocket.Conn
	stop chan struct{}
	once sync.Once
}

func newWSConn(c *websocket.Conn, nc net.Conn, period, timeout time.Duration) *wsConn {
	w := &wsConn{Conn: nc, c: c, stop: make(chan struct{})}
	go w.keepAlive(period, timeout)
	return w
}

func (w *wsConn) keepAlive(period, timeout time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err := w.c.Ping(ctx)
		cancel()
		if err != nil {
			w.c.CloseNow()
			return
		}
	}
}

func (w *wsConn) Close() error {
	w.once.Do(func() { close(w.stop) })
	return w.Conn.Close()
}
