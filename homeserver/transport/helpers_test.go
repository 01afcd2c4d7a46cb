package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"

	"hearth/homeserver/certs"
	"hearth/homeserver/wire"
)

// echoStreams is a tiny real StreamServer: it echoes bytes until EOF.
type echoStreams struct{}

func (echoStreams) ServeStream(ctx context.Context, rwc io.ReadWriteCloser, remote string) {
	defer rwc.Close()
	io.Copy(rwc, rwc)
}

// goodbyeStreams waits for the first byte, then until its context ends,
// then writes "bye" and returns: what a homeserver does at shutdown.
type goodbyeStreams struct{ started chan struct{} }

func (g goodbyeStreams) ServeStream(ctx context.Context, rwc io.ReadWriteCloser, remote string) {
	defer rwc.Close()
	b := make([]byte, 1)
	if _, err := io.ReadFull(rwc, b); err != nil {
		return
	}
	g.started <- struct{}{}
	<-ctx.Done()
	rwc.Write([]byte("bye"))
}

// tokenHistory serves history for token "good" only.
type tokenHistory struct {
	mu        sync.Mutex
	lastLimit int
}

func (h *tokenHistory) limit() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastLimit
}

func (h *tokenHistory) History(ctx context.Context, token, conv string, before uint64, limit int) ([]*wire.Delivery, error) {
	h.mu.Lock()
	h.lastLimit = limit
	h.mu.Unlock()
	switch {
	case token == "boom":
		return nil, errors.New("disk on fire at /var/secret")
	case token != "good":
		return nil, wire.Errorf("test.History", wire.Code_CODE_UNAUTHENTICATED, "invalid token")
	case conv != "c1@a.example":
		return nil, wire.Errorf("test.History", wire.Code_CODE_NOT_MEMBER, "not a member")
	}
	return []*wire.Delivery{{
		Seq: 7, ConversationId: conv, ConversationSeq: before - 1, Sender: "bob@a.example/D1",
		MessageId: "m1", Kind: wire.MessageKind_MESSAGE_KIND_APPLICATION, Epoch: 2,
		Payload: []byte{0, 1, 2, 255}, ServerTimeMs: 1700000000000,
	}}, nil
}

// testServer is a Server on 127.0.0.1 (UDP + TCP, same port) with a dev CA.
type testServer struct {
	*Server
	addr   string
	roots  *x509.CertPool
	caPath string
	done   chan struct{}
}

func startServer(t testing.TB, cfg Config, streams StreamServer) *testServer {
	t.Helper()
	m, roots, err := certs.Local(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := New(cfg, Deps{
		Streams: streams, History: &tokenHistory{}, Media: memMedia{}, TLS: m.TLSConfig(), Log: log,
		Health: func(context.Context) (Health, error) { return Health{Domain: "localhost", Version: "test"}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	pc, ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: s, addr: ln.Addr().String(), roots: roots, caPath: m.CAPath(), done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.ServeQUIC(pc); err != nil {
			t.Errorf("ServeQUIC: %v", err)
		}
	})
	wg.Go(func() {
		if err := s.ServeTLS(ln); err != nil {
			t.Errorf("ServeTLS: %v", err)
		}
	})
	go func() { wg.Wait(); pc.Close(); close(ts.done) }()
	t.Cleanup(func() {
		s.Close()
		<-ts.done
	})
	// ServeQUIC runs on its own goroutine: wait until it serves (it then
	// advertises Alt-Svc), so that no test races its start.
	for deadline := time.Now().Add(10 * time.Second); s.altSvc.Load() == nil; {
		if time.Now().After(deadline) {
			t.Fatal("ServeQUIC did not start within 10 s")
		}
		time.Sleep(time.Millisecond)
	}
	return ts
}

func (ts *testServer) port() int {
	_, p, _ := net.SplitHostPort(ts.addr)
	n, _ := strconv.Atoi(p)
	return n
}

func (ts *testServer) tlsConfig(protos ...string) *tls.Config {
	return &tls.Config{RootCAs: ts.roots, ServerName: "localhost", NextProtos: protos}
}

// httpClient speaks HTTPS (TCP) to the server.
func (ts *testServer) httpClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: ts.tlsConfig("http/1.1")}}
}

// h3Client speaks HTTP/3 to the server.
func (ts *testServer) h3Client(t *testing.T) *http.Client {
	tr := &http3.Transport{TLSClientConfig: ts.tlsConfig()}
	t.Cleanup(func() { tr.Close() })
	return &http.Client{Timeout: 10 * time.Second, Transport: tr}
}

// dialWT opens a WebTransport session and its first stream, writing first.
func (ts *testServer) dialWT(t *testing.T, ctx context.Context) (*webtransport.Session, *webtransport.Stream) {
	t.Helper()
	d := &webtransport.Transport{
		TLSClientConfig: ts.tlsConfig(http3.NextProtoH3),
		QUICConfig:      &quic.Config{EnableDatagrams: true, EnableStreamResetPartialDelivery: true},
	}
	rsp, sess, err := d.Dial(ctx, "https://"+ts.addr+PathWebTransport, nil)
	if err != nil {
		t.Fatalf("webtransport dial: %v", err)
	}
	if rsp.StatusCode != http.StatusOK {
		t.Fatalf("webtransport status %d", rsp.StatusCode)
	}
	str, err := sess.OpenStreamSync(ctx)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	return sess, str
}

// dialNative opens a native QUIC connection (NextProtoHearth) and its
// control stream, writing first.
func (ts *testServer) dialNative(t *testing.T, ctx context.Context) (*quic.Conn, *quic.Stream) {
	t.Helper()
	conn, err := quic.DialAddr(ctx, ts.addr, ts.tlsConfig(NextProtoHearth), &quic.Config{EnableDatagrams: true})
	if err != nil {
		t.Fatalf("native QUIC dial: %v", err)
	}
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	return conn, str
}

// dialWS opens the WebSocket fallback as a byte stream.
func (ts *testServer) dialWS(t *testing.T, ctx context.Context) (*websocket.Conn, net.Conn) {
	t.Helper()
	c, _, err := websocket.Dial(ctx, "wss://"+ts.addr+PathWebSocket, &websocket.DialOptions{HTTPClient: ts.httpClient()})
	if err != nil {
		t.Fatalf("websocket dial: %v", err)
	}
	return c, websocket.NetConn(context.Background(), c, websocket.MessageBinary)
}

// waitSessions waits until the server serves n sessions.
func waitSessions(t *testing.T, s *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.Sessions() != n {
		if time.Now().After(deadline) {
			t.Fatalf("server has %d sessions, want %d", s.Sessions(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
