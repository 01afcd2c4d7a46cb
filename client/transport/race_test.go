package transport

import (
	"testing"
	"time"
)

// TestDialRacesWebSocketWhenUDPBlocked: with UDP dropped, the WebSocket is
// dialled RaceDelay after WebTransport and wins long before QUICTimeout;
// the lost WebTransport attempt, once it fails, marks the address blocked.
func TestDialRacesWebSocketWhenUDPBlocked(t *testing.T) {
	ts := startServer(t, pingServer{}, true)
	memo := &fallbackMemo{now: time.Now}
	opts := DialOptions{RootCAs: ts.roots, QUICTimeout: time.Second, RaceDelay: 50 * time.Millisecond, memo: memo}
	start := time.Now()
	c, err := Dial(testCtx(t), ts.addr, opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	took := time.Since(start)
	conn := c.(*Conn)
	if conn.Protocol() != ProtocolWebSocket || !conn.Raced() {
		t.Fatalf("protocol %s raced=%v, want the raced websocket", conn.Protocol(), conn.Raced())
	}
	if r := conn.RetryQUICAfter(); r < quicBlockedFor {
		t.Errorf("RetryQUICAfter %v, want at least the memo's %v", r, quicBlockedFor)
	}
	if conn.HandshakeRoundTrips() != 3 {
		t.Errorf("websocket handshake round trips = %d, want 3 (TCP, TLS, upgrade)", conn.HandshakeRoundTrips())
	}
	// Loose bound: the QUIC attempt alone would take QUICTimeout.
	if took >= opts.QUICTimeout {
		t.Errorf("dial took %v, not shorter than QUICTimeout %v: the WebSocket was not raced", took, opts.QUICTimeout)
	}
	ping(t, c, 1)
	// The WebTransport attempt goes on in the background until QUICTimeout
	// and then records the address as blocking QUIC.
	deadline := time.Now().Add(10 * time.Second)
	for !memo.blocked(ts.addr) {
		if time.Now().After(deadline) {
			t.Fatal("the failed WebTransport attempt was not remembered")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDialWebTransportWinsRace: with QUIC answering, auto mode connects
// over WebTransport in two round trips and never keeps a WebSocket.
func TestDialWebTransportWinsRace(t *testing.T) {
	ts := startServer(t, pingServer{}, false)
	c, err := Dial(testCtx(t), ts.addr, DialOptions{RootCAs: ts.roots, RaceDelay: time.Second, memo: &fallbackMemo{now: time.Now}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn := c.(*Conn)
	if conn.Protocol() != ProtocolWebTransport || conn.Raced() || conn.RetryQUICAfter() != 0 {
		t.Fatalf("protocol %s raced=%v, want webtransport", conn.Protocol(), conn.Raced())
	}
	if conn.HandshakeRoundTrips() != 2 {
		t.Errorf("webtransport handshake round trips = %d, want 2 (QUIC handshake, CONNECT)", conn.HandshakeRoundTrips())
	}
	ping(t, c, 1)
	waitSessions(t, ts.srv, 1)
	// A second dial in the process resumes the TLS session (same handshake
	// round trips: resumption saves the certificate, not a round trip).
	c2, err := Dial(testCtx(t), ts.addr, DialOptions{RootCAs: ts.roots, memo: &fallbackMemo{now: time.Now}})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if conn2 := c2.(*Conn); !conn2.Resumed() || conn2.HandshakeRoundTrips() != 2 {
		t.Errorf("second dial: resumed=%v, handshake %d; want a resumed session, 2 round trips", conn2.Resumed(), conn2.HandshakeRoundTrips())
	}
	ping(t, c2, 2)
}
