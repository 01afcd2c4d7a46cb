package client

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"hearth/federation"
	"hearth/homeserver"
	"hearth/homeserver/certs"
	"hearth/homeserver/transport"
	"hearth/keys/serverkey"
	"hearth/storage"
)

// NewFedTestServers starts one real homeserver per domain, each serving
// its clients over pipes (as NewTestServer) and federation over real QUIC
// on 127.0.0.1, each pinning the others as peers.
func NewFedTestServers(t *testing.T, domains ...string) []*TestServer {
	t.Helper()
	out := make([]*TestServer, len(domains))
	addrs := make([]string, len(domains))
	cas := make([][]byte, len(domains))
	for i, d := range domains {
		out[i], addrs[i], cas[i] = newFedTestServer(t, d)
	}
	for i, a := range out {
		for j := range out {
			if i != j {
				if _, err := a.srv.FederationPeerAdd(context.Background(), domains[j], addrs[j], cas[j]); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return out
}

func newFedTestServer(t *testing.T, domain string) (ts *TestServer, addr string, caPEM []byte) {
	t.Helper()
	dir := t.TempDir()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	skey, err := serverkey.Generate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ccfg := certs.Config{Dir: dir, Domain: domain, Hosts: certs.HostsFor(domain, "127.0.0.1:0")}
	if err := certs.Init(ccfg, certs.Deps{}); err != nil {
		t.Fatal(err)
	}
	ts = &testServer{domain: domain}
	// start runs the server on its folder's database, listening on at
	// (127.0.0.1:0 the first time, its first address on a restart).
	start := func(t *testing.T, at string) (string, []byte) {
		db, err := storage.Open(filepath.Join(dir, "server.db"), storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		cfg := homeserver.Config{Domain: domain, RetentionInterval: -1,
			Password: homeserver.PasswordParams{Time: 1, MemoryKiB: 8 * 1024, Threads: 1},
			Federation: homeserver.FederationConfig{SendWait: 3 * time.Second,
				Outbound: federation.OutboundConfig{Backoff: federation.Backoff{Base: 50 * time.Millisecond, Max: 400 * time.Millisecond}}}}
		srv, err := homeserver.New(cfg, homeserver.Deps{DB: db, SigningKey: key, ServerKey: skey})
		if err != nil {
			t.Fatal(err)
		}
		cm, err := certs.NewManager(ccfg, certs.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		caPEM, err := os.ReadFile(cm.CAPath())
		if err != nil {
			t.Fatal(err)
		}
		tr, err := transport.New(transport.Config{}, transport.Deps{Streams: srv, TLS: cm.TLSConfig(), Federation: srv.FederationHandler()})
		if err != nil {
			t.Fatal(err)
		}
		pc, ln, err := transport.Listen(at)
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		srv.SetFederationAddress(addr)
		go tr.ServeQUIC(pc)
		go tr.ServeTLS(ln)
		ctx, cancel := context.WithCancel(context.Background())
		ts.mu.Lock()
		ts.srv, ts.ctx, ts.db = srv, ctx, db
		ts.stop = func() {
			cancel()
			tr.Close()
			srv.Close()
			pc.Close()
			ln.Close()
			db.Close()
		}
		ts.mu.Unlock()
		return addr, caPEM
	}
	addr, caPEM = start(t, "127.0.0.1:0")
	ts.restart = func(t *testing.T) { start(t, addr) }
	t.Cleanup(ts.Stop)
	return ts, addr, caPEM
}

// Restart starts a server stopped by Stop again, on its database and its
// address, as a restarted process would.
func (ts *testServer) Restart(t *testing.T) {
	t.Helper()
	ts.Stop()
	ts.restart(t)
}

// Stop ends a server started by NewFedTestServers at once, as a crash
// would for its peers.
func (ts *testServer) Stop() {
	ts.mu.Lock()
	stop := ts.stop
	ts.stop = nil
	ts.mu.Unlock()
	if stop != nil {
		ts.dropAll()
		stop()
	}
}
