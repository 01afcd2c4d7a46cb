package transport

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"hearth/homeserver/certs"
	server "hearth/homeserver/transport"
	"hearth/homeserver/wire"
)

// TestNativeZeroRTT: auto mode dials native QUIC; the first connection
// needs the one round trip of the handshake, a returning one (a ticket in
// the cache) writes its first frames in 0-RTT data: no handshake round
// trip, the server accepts them, and the session works as any other.
func TestNativeZeroRTT(t *testing.T) {
	ts := startServer(t, pingServer{}, false)
	cache := tls.NewLRUClientSessionCache(4)
	opts := DialOptions{RootCAs: ts.roots, SessionCache: cache, memo: &fallbackMemo{now: time.Now}}
	c, err := Dial(testCtx(t), ts.addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	conn := c.(*Conn)
	if conn.Protocol() != ProtocolQUIC || conn.HandshakeRoundTrips() != 1 || conn.EarlyData() {
		t.Fatalf("first dial: %s, handshake %d, early %v; want quic, 1, no 0-RTT", conn.Protocol(), conn.HandshakeRoundTrips(), conn.EarlyData())
	}
	ping(t, c, 1)
	waitSessions(t, ts.srv, 1)
	if n := ts.srv.SessionsByTransport()[server.TransportQUIC]; n != 1 {
		t.Errorf("server counts %d native QUIC sessions, want 1", n)
	}
	c.Close()
	waitSessions(t, ts.srv, 0)

	for i := range 2 { // every connection brings a new ticket
		c, err := Dial(testCtx(t), ts.addr, opts)
		if err != nil {
			t.Fatal(err)
		}
		conn := c.(*Conn)
		if conn.HandshakeRoundTrips() != 0 {
			t.Fatalf("returning dial %d: handshake %d round trips, want 0 (0-RTT)", i, conn.HandshakeRoundTrips())
		}
		ping(t, c, 2)
		if !conn.EarlyData() || conn.EarlyRejected() || !conn.Resumed() || conn.Protocol() != ProtocolQUIC {
			t.Errorf("returning dial %d: early %v rejected %v resumed %v over %s; want accepted 0-RTT over quic",
				i, conn.EarlyData(), conn.EarlyRejected(), conn.Resumed(), conn.Protocol())
		}
		ping(t, c, 3)
		c.Close()
		waitSessions(t, ts.srv, 0)
	}
}

// TestNativeZeroRTTRejected: a ticket the server cannot use (another
// server instance, other ticket keys) makes it reject the 0-RTT data; the
// client writes it again after the handshake, and nothing is lost.
func TestNativeZeroRTTRejected(t *testing.T) {
	opts, other := foreignTicket(t)
	c, err := Dial(testCtx(t), other.addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn := c.(*Conn)
	if conn.HandshakeRoundTrips() != 0 && !conn.EarlyRejected() {
		// (A busy machine may learn of the rejection before the dial
		// returns: TestNativeZeroRTTRejectedBeforeStream.)
		t.Fatalf("dial with a foreign ticket: handshake %d, want a 0-RTT attempt", conn.HandshakeRoundTrips())
	}
	for id := uint64(1); id <= 3; id++ {
		ping(t, c, id)
	}
	if !conn.EarlyRejected() || conn.EarlyData() || conn.HandshakeRoundTrips() != 1 {
		t.Errorf("rejected %v early %v handshake %d; want rejected, 1 round trip", conn.EarlyRejected(), conn.EarlyData(), conn.HandshakeRoundTrips())
	}
}

// TestNativeZeroRTTMovesToWebSocket: a returning client on a network that
// now drops UDP writes its first frames in 0-RTT data; when the handshake
// has not completed within RaceDelay, the WebSocket is dialled, and the
// stream moves there with what was written: answered once, no error.
func TestNativeZeroRTTMovesToWebSocket(t *testing.T) {
	ts := startServer(t, pingServer{}, false)
	relay := newTestRelay(t, ts.addr)
	memo := &fallbackMemo{now: time.Now}
	opts := DialOptions{RootCAs: ts.roots, ServerName: "127.0.0.1", SessionCache: tls.NewLRUClientSessionCache(4),
		RaceDelay: 100 * time.Millisecond, QUICTimeout: 2 * time.Second, memo: memo}
	c, err := Dial(testCtx(t), relay.addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	ping(t, c, 1)
	c.Close()

	relay.dropUDP.Store(true)
	c, err = Dial(testCtx(t), relay.addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn := c.(*Conn)
	if conn.HandshakeRoundTrips() != 0 {
		t.Fatalf("handshake %d, want a 0-RTT attempt", conn.HandshakeRoundTrips())
	}
	ping(t, c, 2)
	ping(t, c, 3)
	if conn.Protocol() != ProtocolWebSocket || !conn.Raced() || conn.HandshakeRoundTrips() != 3 || conn.RetryQUICAfter() == 0 {
		t.Errorf("after the move: %s raced %v handshake %d retry %v; want websocket, raced, 3, a retry time",
			conn.Protocol(), conn.Raced(), conn.HandshakeRoundTrips(), conn.RetryQUICAfter())
	}
	if !memo.blocked(relay.addr) {
		t.Error("the address was not remembered as blocking QUIC")
	}
	if err := conn.SendDatagram([]byte("x")); !errors.Is(err, ErrNoDatagrams) {
		t.Errorf("datagram after the move: %v, want ErrNoDatagrams", err)
	}
}

// TestALPNRefused: a QUIC server that does not speak NextProtoHearth
// (an older Hearth server) refuses the ALPN, which the dialer recognizes
// (and then uses WebTransport).
func TestALPNRefused(t *testing.T) {
	m, roots, err := certs.Local(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tc := m.TLSConfig()
	tc.NextProtos = []string{"h3"}
	ln, err := quic.ListenAddr("127.0.0.1:0", tc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			if _, err := ln.Accept(context.Background()); err != nil {
				return
			}
		}
	}()
	_, err = dialNative(testCtx(t), ln.Addr().String(), DialOptions{RootCAs: roots, ServerName: "127.0.0.1", QUICTimeout: time.Second}, nil, nil)
	if err == nil || !alpnRefused(err) {
		t.Fatalf("dial of an h3-only server: %v, want the ALPN refused", err)
	}
	if alpnRefused(errors.New("timeout")) {
		t.Error("any error counts as ALPN refusal")
	}
}

// startServerWithCA is startServer with ts's certificates (but a TLS
// configuration, so ticket keys, of its own).
func startServerWithCA(t *testing.T, streams server.StreamServer, ts *testServer) *testServer {
	t.Helper()
	tc := ts.tls.Clone()
	var key [32]byte
	rand.Read(key[:])
	tc.SetSessionTicketKeys([][32]byte{key})
	srv, err := server.New(server.Config{}, server.Deps{Streams: streams, TLS: tc, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	pc, ln, err := server.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { srv.ServeQUIC(pc) })
	wg.Go(func() { srv.ServeTLS(ln) })
	t.Cleanup(func() {
		srv.Close()
		wg.Wait()
		pc.Close()
	})
	return &testServer{srv: srv, addr: ln.Addr().String(), roots: ts.roots}
}

// testRelay forwards UDP and TCP on one loopback port to a server; UDP
// can be dropped (a network that blocks QUIC).
type testRelay struct {
	addr    string
	dropUDP atomic.Bool
}

func newTestRelay(t *testing.T, upstream string) *testRelay {
	t.Helper()
	pc, ln, err := server.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &testRelay{addr: ln.Addr().String()}
	up, err := net.ResolveUDPAddr("udp", upstream)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	flows := map[string]*net.UDPConn{}
	udp := pc.(*net.UDPConn)
	wg.Go(func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := udp.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if r.dropUDP.Load() {
				continue
			}
			mu.Lock()
			fc := flows[from.String()]
			if fc == nil {
				if fc, err = net.DialUDP("udp", nil, up); err != nil {
					mu.Unlock()
					continue
				}
				flows[from.String()] = fc
				wg.Go(func() {
					b := make([]byte, 2048)
					for {
						n, err := fc.Read(b)
						if err != nil {
							return
						}
						if !r.dropUDP.Load() {
							udp.WriteToUDP(b[:n], from)
						}
					}
				})
			}
			mu.Unlock()
			fc.Write(buf[:n])
		}
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			go func() { io.Copy(u, c); u.(*net.TCPConn).CloseWrite() }()
			go func() { io.Copy(c, u); c.(*net.TCPConn).CloseWrite() }()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		pc.Close()
		mu.Lock()
		for _, fc := range flows {
			fc.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return r
}

// TestNativeOldTicketNoZeroRTT: the server refuses 0-RTT with a ticket
// older than EarlyDataMaxAge (the session still resumes), so a replay can
// never come after the dedup records of what it carries are gone.
func TestNativeOldTicketNoZeroRTT(t *testing.T) {
	m, roots, err := certs.Local(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var now atomic.Int64
	now.Store(time.Now().UnixMilli())
	srv, err := server.New(server.Config{}, server.Deps{Streams: pingServer{}, TLS: m.TLSConfig(), Log: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return time.UnixMilli(now.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { srv.ServeQUIC(pc) })
	t.Cleanup(func() { srv.Close(); wg.Wait(); pc.Close() })
	opts := DialOptions{RootCAs: roots, SessionCache: tls.NewLRUClientSessionCache(4), QUICOnly: true}
	dial := func() *Conn {
		t.Helper()
		c, err := Dial(testCtx(t), pc.LocalAddr().String(), opts)
		if err != nil {
			t.Fatal(err)
		}
		ping(t, c, 1)
		return c.(*Conn)
	}
	dial().Close()
	now.Add((server.EarlyDataMaxAge + time.Minute).Milliseconds())
	c := dial()
	defer c.Close()
	if !c.EarlyRejected() || c.EarlyData() || !c.Resumed() {
		t.Errorf("ticket older than %v: rejected %v, early %v, resumed %v; want 0-RTT rejected on a resumed session",
			server.EarlyDataMaxAge, c.EarlyRejected(), c.EarlyData(), c.Resumed())
	}
}

// TestNativeZeroRTTServerGone: a returning client whose server is gone
// (no QUIC answer, the WebSocket refused) sees its 0-RTT stream fail
// within QUICTimeout, as a dial would, instead of waiting for ever.
func TestNativeZeroRTTServerGone(t *testing.T) {
	ts := startServer(t, pingServer{}, false)
	relay := newTestRelay(t, ts.addr)
	opts := DialOptions{RootCAs: ts.roots, ServerName: "127.0.0.1", SessionCache: tls.NewLRUClientSessionCache(4),
		RaceDelay: 50 * time.Millisecond, QUICTimeout: time.Second, memo: &fallbackMemo{now: time.Now}}
	c, err := Dial(testCtx(t), relay.addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	ping(t, c, 1)
	c.Close()
	ts.srv.Close()
	relay.dropUDP.Store(true) // and the relay's TCP side finds no server

	c, err = Dial(testCtx(t), relay.addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.(*Conn).HandshakeRoundTrips() != 0 {
		t.Fatal("no 0-RTT attempt")
	}
	start := time.Now()
	wire.NewFrameWriter(c, 0).WriteMessage(&wire.ClientFrame{Id: 1, Body: &wire.ClientFrame_Ping{Ping: &wire.Ping{}}})
	done := make(chan error, 1)
	go func() { _, err := c.Read(make([]byte, 16)); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("read from a gone server succeeded")
		}
		t.Logf("failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(5 * time.Second):
		t.Fatal("the 0-RTT stream to a gone server still waits after 5 s")
	}
}

// TestNativeZeroRTTDialsAgain: with QUICOnly (no WebSocket to move to), a
// 0-RTT connection whose handshake does not complete within QUICTimeout
// (here: UDP dropped, then back) is dialled again without 0-RTT and what
// was written goes there: the ping is answered once, on a native QUIC
// connection with a full handshake.
func TestNativeZeroRTTDialsAgain(t *testing.T) {
	ts := startServer(t, pingServer{}, false)
	relay := newTestRelay(t, ts.addr)
	opts := DialOptions{RootCAs: ts.roots, ServerName: "127.0.0.1", SessionCache: tls.NewLRUClientSessionCache(4),
		QUICOnly: true, QUICTimeout: 2 * time.Second, memo: &fallbackMemo{now: time.Now}}
	c, err := Dial(testCtx(t), relay.addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	ping(t, c, 1)
	c.Close()

	relay.dropUDP.Store(true)
	c, err = Dial(testCtx(t), relay.addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn := c.(*Conn)
	if conn.HandshakeRoundTrips() != 0 {
		t.Fatalf("handshake %d, want a 0-RTT attempt", conn.HandshakeRoundTrips())
	}
	// Back after the first handshake was given up (QUICTimeout), while
	// the second one retries its first packet.
	time.AfterFunc(opts.QUICTimeout+300*time.Millisecond, func() { relay.dropUDP.Store(false) })
	ping(t, c, 2)
	ping(t, c, 3)
	if conn.Protocol() != ProtocolQUIC || conn.HandshakeRoundTrips() != 1 || !conn.EarlyRejected() || conn.Raced() {
		t.Errorf("after dialling again: %s handshake %d rejected %v raced %v; want quic, 1, true, false",
			conn.Protocol(), conn.HandshakeRoundTrips(), conn.EarlyRejected(), conn.Raced())
	}
}

// TestNativeZeroRTTRejectedBeforeStream: the server's rejection of 0-RTT
// arrives before the dial opened its control stream (a busy client: the
// dial returned, and the goroutine ran on only after the answer). The
// stream is opened on the connection the handshake went on with, and
// the session works; before, the dial failed with "0-RTT rejected".
func TestNativeZeroRTTRejectedBeforeStream(t *testing.T) {
	opts, other := foreignTicket(t)
	beforeOpenStream = func(qc *quic.Conn) {
		select {
		case <-qc.HandshakeComplete():
		case <-time.After(5 * time.Second):
		}
	}
	t.Cleanup(func() { beforeOpenStream = nil })
	c, err := Dial(testCtx(t), other.addr, opts)
	if err != nil {
		t.Fatalf("dial whose 0-RTT was rejected before its stream opened: %v", err)
	}
	defer c.Close()
	for id := uint64(1); id <= 3; id++ {
		ping(t, c, id)
	}
	if conn := c.(*Conn); !conn.EarlyRejected() || conn.EarlyData() || conn.HandshakeRoundTrips() != 1 {
		t.Errorf("rejected %v early %v handshake %d; want rejected, 1 round trip", conn.EarlyRejected(), conn.EarlyData(), conn.HandshakeRoundTrips())
	}
}

// foreignTicket returns dial options whose session cache holds a ticket
// for 127.0.0.1 from one server, and a second server on another port with
// the same CA but its own ticket keys, which rejects that ticket's 0-RTT.
func foreignTicket(t *testing.T) (DialOptions, *testServer) {
	t.Helper()
	ts := startServer(t, pingServer{}, false)
	opts := DialOptions{RootCAs: ts.roots, SessionCache: tls.NewLRUClientSessionCache(4), QUICOnly: true}
	c, err := Dial(testCtx(t), ts.addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	ping(t, c, 1)
	c.Close()
	return opts, startServerWithCA(t, pingServer{}, ts)
}
