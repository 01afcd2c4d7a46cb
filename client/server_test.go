package client

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hearth/homeserver"
	"hearth/storage"
)

// testServer is the real homeserver (real SQLite in t.TempDir()) served in
// process: every dial is a net.Pipe whose far end ServeStream serves.
type testServer struct {
	srv    *homeserver.Server
	skew   atomic.Int64 // added to the server's clock (ns), to expire tokens
	ctx    context.Context
	mu     sync.Mutex
	conns  []net.Conn
	domain string
	db     *storage.DB
	stop   func() // NewFedTestServers' servers: ends it (Stop)
	// restart starts a NewFedTestServers server again (Restart).
	restart func(t *testing.T)
}

func newTestServer(t testing.TB, domain string, cfg homeserver.Config) *testServer {
	t.Helper()
	db, err := storage.Open(filepath.Join(t.TempDir(), "server.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Domain = domain
	cfg.RetentionInterval = -1
	cfg.Password = homeserver.PasswordParams{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}
	ts := &testServer{domain: domain, db: db}
	srv, err := homeserver.New(cfg, homeserver.Deps{DB: db, SigningKey: key,
		Now: func() time.Time { return time.Now().Add(time.Duration(ts.skew.Load())) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts.srv, ts.ctx = srv, ctx
	t.Cleanup(func() {
		cancel()
		srv.Close()
		db.Close()
	})
	return ts
}

func (ts *testServer) addUser(t testing.TB, name, password string) string {
	t.Helper()
	if _, err := ts.srv.UserAdd(context.Background(), name, []byte(password), false); err != nil {
		t.Fatal(err)
	}
	return name + "@" + ts.domain
}

func (ts *testServer) dial(ctx context.Context, addr, caPath string) (io.ReadWriteCloser, error) {
	a, b := net.Pipe()
	ts.mu.Lock()
	ts.conns = append(ts.conns, a)
	srv, sctx := ts.srv, ts.ctx // a restarted server's (Restart)
	ts.mu.Unlock()
	// The test's devices are processes on the server's host: loopback,
	// which the per-address login limits leave alone (as for `hearth bench`).
	go srv.ServeStream(sctx, b, "127.0.0.1:0")
	return a, nil
}

// dropAll cuts every stream, as a network failure would.
func (ts *testServer) dropAll() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, c := range ts.conns {
		c.Close()
	}
	ts.conns = nil
}

func (ts *testServer) client(t *testing.T) *Client {
	t.Helper()
	c, err := Open(Config{Profile: t.TempDir(), Dial: ts.dial, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func homeserverConfig() homeserver.Config { return homeserver.Config{} }
