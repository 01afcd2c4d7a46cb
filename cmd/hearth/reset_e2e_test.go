package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/quic-go/quic-go"

	"hearth/homeserver/wire"
)

// TestServeStatelessResetAfterKill: a client session is open when the
// server process is killed (SIGKILL: no goodbye). A new `hearth serve` on
// the same folder and port answers the client's next packet with a QUIC
// stateless reset made from DIR/quic-reset.key, so the client's read fails
// with quic.StatelessResetError instead of waiting out its idle timeout
// (which would end it with an IdleTimeoutError); the key file is 0600 and
// the same across restarts.
func TestServeStatelessResetAfterKill(t *testing.T) {
	skipShort(t)
	dir := filepath.Join(t.TempDir(), "data")
	mustHearth(t, "", "init", "--dir", dir, "--domain", "localhost", "--listen", "127.0.0.1:0")
	s := startServe(t, dir, nil, "--dir", dir)
	mustHearth(t, "s3cret pass\n", "admin", "--dir", dir, "user", "add", "rita", "--password-stdin")
	keyPath := filepath.Join(dir, resetKeyFile)
	key1, err := os.ReadFile(keyPath)
	if err != nil || len(key1) != 32 {
		t.Fatalf("reset key after first serve: %d bytes, %v", len(key1), err)
	}
	if fi, _ := os.Stat(keyPath); fi.Mode().Perm() != 0o600 {
		t.Errorf("%s mode %v, want 0600", resetKeyFile, fi.Mode().Perm())
	}
	c, fr, f := s.session(t, "rita", "s3cret pass", false)
	defer c.Close()
	if f.GetLoginOk() == nil {
		t.Fatalf("login: %v", f)
	}

	s.cmd.Process.Kill()
	s.done <- <-s.done // reaped (its sockets are closed); kept for the cleanup
	startServe(t, dir, nil, "--dir", dir, "--listen", s.addr)
	if key2, _ := os.ReadFile(keyPath); string(key2) != string(key1) {
		t.Fatal("reset key changed across restarts")
	}

	// quic-go answers only packets longer than 42 bytes with a reset (so
	// that two endpoints cannot reset each other in a loop): a request
	// with some content, as a real client's next message is. A bare
	// keep-alive PING (25 bytes) is not answered (docs/transport.md).
	fw := wire.NewFrameWriter(c, 0)
	fw.WriteMessage(&wire.ClientFrame{Id: 2, Body: &wire.ClientFrame_FetchDeviceList{
		FetchDeviceList: &wire.FetchDeviceList{User: "somebody-with-a-longish-name@localhost"}}})
	var g wire.ServerFrame
	err = fr.ReadMessage(&g)
	var reset *quic.StatelessResetError
	if !errors.As(err, &reset) {
		t.Fatalf("client read after the restart ended with %v (%T), want a stateless reset", err, err)
	}
}
