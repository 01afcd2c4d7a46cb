package transport

import (
	"context"
	"io"
	"testing"
	"time"
)

// TestQUICPackets: the packets of a WebTransport and of a native QUIC
// session are counted while it is open and stay counted after it ended
// (a WebTransport connection leaves the live set when its context ends,
// a native one when the session closes it: nativeConn.Close).
func TestQUICPackets(t *testing.T) {
	for _, mode := range []string{TransportWebTransport, TransportQUIC} {
		t.Run(mode, func(t *testing.T) {
			ts := startServer(t, Config{}, echoStreams{})
			if n := ts.QUICPackets(); n.Sent != 0 || n.Received != 0 {
				t.Fatalf("before any connection: %+v", n)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var str io.ReadWriter
			var hangUp func()
			if mode == TransportQUIC {
				conn, s := ts.dialNative(t, ctx)
				str, hangUp = s, func() { conn.CloseWithError(0, "") }
			} else {
				sess, s := ts.dialWT(t, ctx)
				str, hangUp = s, func() { sess.CloseWithError(0, "") }
			}
			const rounds = 20
			buf := make([]byte, 5)
			for range rounds {
				if _, err := str.Write([]byte("hello")); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(str, buf); err != nil {
					t.Fatal(err)
				}
			}
			live := ts.QUICPackets()
			// Each echo is at least one packet each way, besides the handshake.
			if live.Sent < rounds || live.Received < rounds {
				t.Fatalf("after %d echoes: %+v", rounds, live)
			}
			hangUp()
			waitSessions(t, ts.Server, 0)
			deadline := time.Now().Add(10 * time.Second)
			for {
				ts.packets.mu.Lock()
				n := len(ts.packets.live)
				ts.packets.mu.Unlock()
				if n == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d connections still counted as live", n)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if ended := ts.QUICPackets(); ended.Sent < live.Sent || ended.Received < live.Received {
				t.Fatalf("counts fell when the connection ended: %+v, then %+v", live, ended)
			}
		})
	}
}
