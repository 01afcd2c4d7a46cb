//go:build js

package transport

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/coder/websocket"

	"hearth/homeserver/wire"
)

// In the browser (GOOS=js) the client reaches its homeserver through the
// browser's own WebSocket; the browser does TLS and trusts certificates
// itself, and answers the server's pings. WebTransport through the
// browser's API is not wired yet.

const pathWebSocket = "/hearth/v1/ws"

// wsSlack is the frame's varint length prefix a message carries beyond MaxFrame.
const wsSlack = 16

// DialBrowser connects to the homeserver at addr (HOST:PORT, usually the
// page's own location.host) with the browser's WebSocket and returns the
// control stream, a *Conn. maxFrame bounds frames from the server
// (0: wire.DefaultMaxFrame).
func DialBrowser(ctx context.Context, addr string, maxFrame int) (io.ReadWriteCloser, error) {
	if addr == "" {
		return nil, errors.New("transport: dial: no server address")
	}
	if maxFrame <= 0 {
		maxFrame = wire.DefaultMaxFrame
	}
	c, _, err := websocket.Dial(ctx, "wss://"+addr+pathWebSocket, nil)
	if err != nil {
		return nil, fmt.Errorf("transport: dial %s: websocket: %w", addr, err)
	}
	nc := websocket.NetConn(context.Background(), c, websocket.MessageBinary)
	c.SetReadLimit(int64(maxFrame) + wsSlack)
	return &Conn{rwc: nc, protocol: ProtocolWebSocket, handshake: 3}, nil
}

// SendDatagram: the browser's WebSocket carries no datagrams.
func (c *Conn) SendDatagram([]byte) error { return ErrNoDatagrams }

// ReceiveDatagram: the browser's WebSocket carries no datagrams.
func (c *Conn) ReceiveDatagram(context.Context) ([]byte, error) { return nil, ErrNoDatagrams }
