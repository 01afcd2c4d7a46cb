package transport

import (
	"context"
	"io"
	"testing"
	"time"
)

// TestQUICPackets: the packets of a WebTransport session are counted
// while it is open and stay counted after it ended.
func TestQUICPackets(t *testing.T) {
	ts := startServer(t, Config{}, echoStreams{})
	if n := ts.QUICPackets(); n.Sent != 0 || n.Received != 0 {
		t.Fatalf("before any connection: %+v", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sess, str := ts.dialWT(t, ctx)
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
	sess.CloseWithError(0, "")
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
}
