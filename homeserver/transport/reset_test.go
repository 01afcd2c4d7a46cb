package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"

	"hearth/homeserver/certs"
)

// TestStatelessResetAfterRestart: a server is "killed" (its UDP socket
// closed under it, so it sends nothing more) and a new server starts on
// the same port. With the same ResetKey, the client's next packet is
// answered with a stateless reset and its session ends with
// quic.StatelessResetError at once; with another key the new server
// cannot prove the old connection's token and the client only gives up at
// its idle timeout.
func TestStatelessResetAfterRestart(t *testing.T) {
	for _, tc := range []struct {
		name      string
		sameKey   bool
		wantReset bool
	}{{"same key", true, true}, {"other key", false, false}} {
		t.Run(tc.name, func(t *testing.T) {
			err := restartAndWrite(t, tc.sameKey)
			var reset *quic.StatelessResetError
			var idle *quic.IdleTimeoutError
			switch {
			case tc.wantReset && !errors.As(err, &reset):
				t.Fatalf("client session ended with %v (%T), want a stateless reset", err, err)
			case !tc.wantReset && !errors.As(err, &idle) && !idleThroughHTTP3(err):
				t.Fatalf("client session ended with %v (%T), want its idle timeout", err, err)
			}
		})
	}
}

// restartAndWrite runs one kill-and-restart and returns the error that
// ended the client's session.
func restartAndWrite(t *testing.T, sameKey bool) error {
	m, roots, err := certs.Local(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	newKey := func() *quic.StatelessResetKey {
		var k quic.StatelessResetKey
		rand.Read(k[:])
		return &k
	}
	serve := func(addr string, key *quic.StatelessResetKey) (*Server, net.PacketConn) {
		s, err := New(Config{}, Deps{Streams: echoStreams{}, TLS: m.TLSConfig(), Log: slog.New(slog.DiscardHandler), ResetKey: key})
		if err != nil {
			t.Fatal(err)
		}
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		go s.ServeQUIC(pc)
		t.Cleanup(func() { s.Close(); pc.Close() })
		return s, pc
	}
	key1 := newKey()
	_, pc1 := serve("127.0.0.1:0", key1)
	addr := pc1.LocalAddr().String()

	d := &webtransport.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost", NextProtos: []string{http3.NextProtoH3}},
		QUICConfig:      &quic.Config{EnableDatagrams: true, EnableStreamResetPartialDelivery: true, MaxIdleTimeout: 3 * time.Second, KeepAlivePeriod: time.Second},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rsp, sess, err := d.Dial(ctx, "https://"+addr+PathWebTransport, nil)
	if err != nil || rsp.StatusCode != http.StatusOK {
		t.Fatalf("dial: %v %v", rsp, err)
	}
	defer sess.CloseWithError(0, "")
	str, err := sess.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := str.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(str, buf); err != nil || string(buf) != "hi" {
		t.Fatalf("echo: %q %v", buf, err)
	}

	pc1.Close() // killed: the old server sends nothing more
	key2 := key1
	if !sameKey {
		key2 = newKey()
	}
	time.Sleep(300 * time.Millisecond) // dead for a moment (a restart takes longer), not a limit
	serve(addr, key2)                  // restarted on the same port
	// quic-go resets only packets over 42 bytes (no reset loops): send
	// some content, as a client's next request does.
	str.Write(bytes.Repeat([]byte("again "), 20))
	_, err = str.Read(buf) // ends when the QUIC connection does, with its error
	return err
}

// idleThroughHTTP3 tells whether err is the QUIC idle timeout as http3
// reports it when the timeout ends the session while its datagram reader
// waits (an *http3.Error carrying quic's "no recent network activity"),
// which happens on a busy machine instead of the bare IdleTimeoutError.
func idleThroughHTTP3(err error) bool {
	return err != nil && strings.Contains(err.Error(), "timeout: no recent network activity")
}
