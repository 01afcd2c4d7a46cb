package transport

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hearth/homeserver/certs"
	server "hearth/homeserver/transport"
	"hearth/homeserver/wire"
	"hearth/keys/testutil"
)

// pingServer answers every Ping frame with a Pong echoing its id, until EOF.
type pingServer struct{}

func (pingServer) ServeStream(ctx context.Context, rwc io.ReadWriteCloser, remote string) {
	defer rwc.Close()
	fr, fw := wire.NewFrameReader(rwc, 0), wire.NewFrameWriter(rwc, 0)
	for {
		var f wire.ClientFrame
		if err := fr.ReadMessage(&f); err != nil {
			return
		}
		fw.WriteMessage(&wire.ServerFrame{Id: f.GetId(), Body: &wire.ServerFrame_Pong{Pong: &wire.Pong{ServerTimeMs: 1}}})
	}
}

// hangupServer writes one Pong after the first frame and ends the session.
type hangupServer struct{}

func (hangupServer) ServeStream(ctx context.Context, rwc io.ReadWriteCloser, remote string) {
	defer rwc.Close()
	var f wire.ClientFrame
	if err := wire.NewFrameReader(rwc, 0).ReadMessage(&f); err != nil {
		return
	}
	wire.NewFrameWriter(rwc, 0).WriteMessage(&wire.ServerFrame{Id: f.GetId(), Body: &wire.ServerFrame_Pong{Pong: &wire.Pong{}}})
}

type testServer struct {
	srv     *server.Server
	addr    string
	roots   *x509.CertPool
	unblock func() // starts serving QUIC on a server started with blockUDP
}

// startServer runs the real homeserver transport on 127.0.0.1:0; with
// blockUDP the UDP socket is open but never read, like a firewall dropping
// QUIC.
func startServer(t *testing.T, streams server.StreamServer, blockUDP bool) *testServer {
	t.Helper()
	m, roots, err := certs.Local(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{}, server.Deps{Streams: streams, TLS: m.TLSConfig(), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	pc, ln, err := server.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	serveQUIC := func() { wg.Go(func() { srv.ServeQUIC(pc) }) }
	if !blockUDP {
		serveQUIC()
	}
	wg.Go(func() { srv.ServeTLS(ln) })
	t.Cleanup(func() {
		srv.Close()
		wg.Wait()
		pc.Close()
	})
	return &testServer{srv: srv, addr: ln.Addr().String(), roots: roots, unblock: serveQUIC}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// ping writes a Ping with id and expects the matching Pong.
func ping(t *testing.T, c io.ReadWriter, id uint64) {
	t.Helper()
	if err := wire.NewFrameWriter(c, 0).WriteMessage(&wire.ClientFrame{Id: id, Body: &wire.ClientFrame_Ping{Ping: &wire.Ping{}}}); err != nil {
		t.Fatal(err)
	}
	var f wire.ServerFrame
	if err := wire.NewFrameReader(c, 0).ReadMessage(&f); err != nil {
		t.Fatal(err)
	}
	if f.GetId() != id || f.GetPong() == nil {
		t.Fatalf("answer %v, want Pong %d", &f, id)
	}
}

func waitSessions(t *testing.T, s *server.Server, n int) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, func() error {
		if got := s.Sessions(); got != n {
			return fmt.Errorf("server has %d sessions, want %d", got, n)
		}
		return nil
	})
}

func TestDialProtocols(t *testing.T) {
	ts := startServer(t, pingServer{}, false)
	for _, tc := range []struct {
		force bool
		want  string
	}{{false, ProtocolWebTransport}, {true, ProtocolWebSocket}} {
		c, err := Dial(testCtx(t), ts.addr, DialOptions{RootCAs: ts.roots, ForceWebSocket: tc.force})
		if err != nil {
			t.Fatalf("Dial force=%v: %v", tc.force, err)
		}
		if p := c.(*Conn).Protocol(); p != tc.want {
			t.Errorf("force=%v: protocol %s, want %s", tc.force, p, tc.want)
		}
		ping(t, c, 1)
		ping(t, c, 2)
		waitSessions(t, ts.srv, 1)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		waitSessions(t, ts.srv, 0)
	}
}

func TestDialFallsBackWhenUDPBlocked(t *testing.T) {
	ts := startServer(t, pingServer{}, true)
	c, err := Dial(testCtx(t), ts.addr, DialOptions{RootCAs: ts.roots, QUICTimeout: 300 * time.Millisecond, memo: &fallbackMemo{now: time.Now}})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	if p := c.(*Conn).Protocol(); p != ProtocolWebSocket {
		t.Fatalf("protocol %s, want the websocket fallback", p)
	}
	ping(t, c, 9)
}

func TestDialRefusesUntrustedServer(t *testing.T) {
	ts := startServer(t, pingServer{}, false)
	_, err := Dial(testCtx(t), ts.addr, DialOptions{RootCAs: x509.NewCertPool()})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Dial without the server's CA: %v", err)
	}
	if !strings.Contains(err.Error(), "webtransport") || !strings.Contains(err.Error(), "websocket") {
		t.Errorf("error does not report both attempts: %v", err)
	}
	if _, err := Dial(testCtx(t), "no-port", DialOptions{}); err == nil {
		t.Error("Dial of an address without port succeeded")
	}
}

func TestServerHangupGivesEOF(t *testing.T) {
	ts := startServer(t, hangupServer{}, false)
	for _, force := range []bool{false, true} {
		c, err := Dial(testCtx(t), ts.addr, DialOptions{RootCAs: ts.roots, ForceWebSocket: force})
		if err != nil {
			t.Fatal(err)
		}
		ping(t, c, 3)
		if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
			t.Errorf("force=%v: after hangup read %q, %v; want EOF", force, rest, err)
		}
		c.Close()
		waitSessions(t, ts.srv, 0)
	}
}

func TestSocketPoolSharesSockets(t *testing.T) {
	ts := startServer(t, pingServer{}, false)
	pool := NewSocketPool(4)
	defer pool.Close()
	var conns []io.ReadWriteCloser
	for i := range 6 {
		c, err := Dial(testCtx(t), ts.addr, DialOptions{RootCAs: ts.roots, Sockets: pool})
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		if c.(*Conn).Protocol() != ProtocolWebTransport {
			t.Fatalf("dial %d fell back to %s", i, c.(*Conn).Protocol())
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		ping(t, c, uint64(i+1))
	}
	if n := pool.Sockets(); n != 2 {
		t.Errorf("6 sessions with 4 per socket use %d sockets, want 2", n)
	}
	locals := map[string]bool{}
	for _, c := range conns {
		locals[c.(*Conn).rwc.(*wtConn).sess.LocalAddr().String()] = true
	}
	if len(locals) != 2 {
		t.Errorf("sessions on %d local addresses, want 2", len(locals))
	}
	for _, c := range conns {
		c.Close()
	}
	waitSessions(t, ts.srv, 0)
	// Released slots are reused rather than opening new sockets.
	c, err := Dial(testCtx(t), ts.addr, DialOptions{RootCAs: ts.roots, Sockets: pool})
	if err != nil {
		t.Fatal(err)
	}
	ping(t, c, 99)
	c.Close()
	if n := pool.Sockets(); n != 2 {
		t.Errorf("after reuse the pool has %d sockets", n)
	}
}

// freezer is a TCP proxy whose forwarding can be stopped, like a NAT that
// silently dropped the connection.
type freezer struct {
	ln     net.Listener
	frozen chan struct{}
	toDial atomic.Int64 // bytes forwarded from the server to the dialer
}

func newFreezer(t *testing.T, target string) *freezer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, frozen: make(chan struct{})}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			t.Cleanup(func() { c.Close(); s.Close() })
			go f.pipe(c, s, &f.toDial)
			go f.pipe(s, c, new(atomic.Int64))
		}
	}()
	return f
}

func (f *freezer) pipe(dst, src net.Conn, forwarded *atomic.Int64) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		select {
		case <-f.frozen:
			continue // swallow
		default:
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
		forwarded.Add(int64(n))
	}
}

func TestWebSocketKeepAliveDetectsDeadConnection(t *testing.T) {
	ts := startServer(t, pingServer{}, true)
	fz := newFreezer(t, ts.addr)
	_, port, _ := net.SplitHostPort(fz.ln.Addr().String())
	c, err := Dial(testCtx(t), "localhost:"+port, DialOptions{RootCAs: ts.roots, ForceWebSocket: true, wsPingPeriod: 50 * time.Millisecond, wsPingTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ping(t, c, 1)
	// A keep-alive ping flows and is answered: the server sends nothing
	// else now (the dialer reads the pong with its next frame).
	before := fz.toDial.Load()
	testutil.WaitFor(t, 10*time.Second, func() error {
		if fz.toDial.Load() == before {
			return errors.New("no keep-alive pong has reached the dialer")
		}
		return nil
	})
	ping(t, c, 2)
	close(fz.frozen)
	// The reader learns that the connection is dead: a ping goes unanswered.
	done := make(chan error, 1)
	go func() { _, err := c.Read(make([]byte, 1)); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("read on a dead connection returned data")
		}
	case <-testCtx(t).Done():
		t.Fatal("dead connection not detected")
	}
}

// datagramEcho answers each datagram with "echo:" and its bytes while the stream is open.
type datagramEcho struct{}

func (datagramEcho) ServeStream(ctx context.Context, rwc io.ReadWriteCloser, remote string) {
	defer rwc.Close()
	dc, ok := rwc.(server.DatagramConn)
	if !ok {
		io.Copy(io.Discard, rwc)
		return
	}
	go func() {
		for {
			b, err := dc.ReceiveDatagram(ctx)
			if err != nil {
				return
			}
			dc.SendDatagram(append([]byte("echo:"), b...))
		}
	}()
	io.Copy(io.Discard, rwc)
}

func TestDatagrams(t *testing.T) {
	ts := startServer(t, datagramEcho{}, false)
	ctx := testCtx(t)
	rwc, err := Dial(ctx, ts.addr, DialOptions{RootCAs: ts.roots})
	if err != nil {
		t.Fatal(err)
	}
	defer rwc.Close()
	c := rwc.(*Conn)
	c.Write([]byte{0}) // the client speaks first
	waitSessions(t, ts.srv, 1)
	// Datagrams may be lost: send until one echo arrives.
	got := make(chan []byte, 1)
	go func() {
		b, err := c.ReceiveDatagram(ctx)
		if err == nil {
			got <- b
		}
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := c.SendDatagram([]byte("typing")); err != nil {
			t.Fatal(err)
		}
		select {
		case b := <-got:
			if string(b) != "echo:typing" {
				t.Fatalf("datagram %q", b)
			}
			ws, err := Dial(ctx, ts.addr, DialOptions{RootCAs: ts.roots, ForceWebSocket: true})
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			if err := ws.(*Conn).SendDatagram([]byte("x")); err != ErrNoDatagrams {
				t.Errorf("WebSocket SendDatagram: %v", err)
			}
			return
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("no datagram echoed")
		}
	}
}

func TestDialRemembersBlockedQUIC(t *testing.T) {
	ts := startServer(t, pingServer{}, true)
	now := time.Now()
	memo := &fallbackMemo{now: func() time.Time { return now }}
	opts := DialOptions{RootCAs: ts.roots, QUICTimeout: 300 * time.Millisecond, RaceDelay: -1, memo: memo}
	protocol := func() string {
		t.Helper()
		c, err := Dial(testCtx(t), ts.addr, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ping(t, c, 1)
		return c.(*Conn).Protocol()
	}
	if p := protocol(); p != ProtocolWebSocket {
		t.Fatalf("UDP blocked: %s", p)
	}
	// QUIC works now, but the memo sends the next dial straight to the WebSocket.
	ts.unblock()
	if p := protocol(); p != ProtocolWebSocket {
		t.Errorf("within %v of the fallback: %s, want the remembered websocket", quicBlockedFor, p)
	}
	// Later WebTransport is tried again, and success clears the memo.
	now = now.Add(quicBlockedFor)
	if p := protocol(); p != ProtocolWebTransport {
		t.Errorf("after %v: %s, want webtransport again", quicBlockedFor, p)
	}
	if memo.blocked(ts.addr) {
		t.Error("memo kept an address where WebTransport works")
	}
}
