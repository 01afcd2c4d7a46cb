package transport

import (
	"context"
	"net/http"

	"github.com/coder/websocket"
)

// wsSlack is what a WebSocket message may carry beyond MaxFrame: the
// frame's varint length prefix.
const wsSlack = 16

// serveWebSocket upgrades GET /hearth/v1/ws and serves the connection as a
// control stream. Binary messages are concatenated into one byte stream of
// frames; clients send one frame per message, and a message longer than a
// frame (MaxFrame + prefix) closes the connection with status 1009.
func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: s.cfg.OriginPatterns})
	if err != nil {
		s.log.Debug("websocket upgrade refused", "remote", r.RemoteAddr, "err", err)
		return // Accept wrote the response
	}
	// Reads and writes are cancelled by closing the connection, not by a
	// context, so the StreamServer can still write its goodbye at shutdown.
	nc := websocket.NetConn(context.Background(), c, websocket.MessageBinary)
	c.SetReadLimit(int64(s.cfg.MaxFrame) + wsSlack) // after NetConn, which lifts the limit
	// As for WebTransport: the hijacked connection is served on a fresh
	// goroutine and net/http's goroutine ends, with its request and
	// response (BenchmarkIdleSessionMemory/websocket: 43.7 → 31.5 KB per
	// idle session at 1,000; stacks 16.8 → 8.7 MB).
	go s.serveSession(context.Background(), nc, r.RemoteAddr, TransportWebSocket)
}
