package transport

import (
	"testing"
	"time"
)

// TestDialWebTransportOnly: with WebTransportOnly a blocked QUIC path is an
// error, not a WebSocket session, and a remembered fallback does not send
// the dial to the WebSocket once QUIC works.
func TestDialWebTransportOnly(t *testing.T) {
	ts := startServer(t, pingServer{}, true)
	memo := &fallbackMemo{now: time.Now}
	opts := DialOptions{RootCAs: ts.roots, QUICTimeout: 300 * time.Millisecond, WebTransportOnly: true, memo: memo}
	if c, err := Dial(testCtx(t), ts.addr, opts); err == nil {
		c.Close()
		t.Fatalf("Dial succeeded over %s with UDP blocked, want an error", c.(*Conn).Protocol())
	}
	if n := ts.srv.Sessions(); n != 0 {
		t.Fatalf("server holds %d sessions after a refused WebTransport-only dial, want 0", n)
	}
	if memo.blocked(ts.addr) {
		t.Fatal("a WebTransport-only dial wrote the fallback memo")
	}
	memo.remember(ts.addr)
	ts.unblock()
	c, err := Dial(testCtx(t), ts.addr, opts)
	if err != nil {
		t.Fatalf("Dial after unblocking: %v", err)
	}
	defer c.Close()
	if p := c.(*Conn).Protocol(); p != ProtocolWebTransport {
		t.Fatalf("protocol %s with a remembered fallback, want %s", p, ProtocolWebTransport)
	}
	ping(t, c, 3)
}
