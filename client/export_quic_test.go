package client

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"

	"hearth/client/transport"
	"hearth/homeserver/certs"
	server "hearth/homeserver/transport"
)

// DialQUIC serves ts over the real transport (WebTransport over QUIC and
// the WebSocket fallback on 127.0.0.1:0) and returns a dialer for it;
// forceWebSocket dials the fallback.
func (ts *testServer) DialQUIC(t testing.TB, forceWebSocket bool) DialFunc {
	t.Helper()
	m, roots, err := certs.Local(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{}, server.Deps{Streams: ts.srv, TLS: m.TLSConfig(), Log: slog.New(slog.DiscardHandler)})
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
	addr := ln.Addr().String()
	return func(ctx context.Context, _, _ string) (io.ReadWriteCloser, error) {
		return transport.Dial(ctx, addr, transport.DialOptions{RootCAs: roots, ForceWebSocket: forceWebSocket})
	}
}

// DatagramPushes is the server's count of signals sent as datagrams.
func (ts *testServer) DatagramPushes() uint64 { return ts.srv.DatagramPushes() }
