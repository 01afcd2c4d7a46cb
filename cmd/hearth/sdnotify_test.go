package main

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// TestSdNotify: one datagram per call to the socket $NOTIFY_SOCKET names,
// a path or an @abstract name; nothing without the variable; a relative
// name is an error.
func TestSdNotify(t *testing.T) {
	b := make([]byte, 6)
	rand.Read(b)
	abstract := "@hearth-test-" + hex.EncodeToString(b)
	for _, name := range []string{filepath.Join(t.TempDir(), "n.sock"), abstract} {
		listen := name
		if name[0] == '@' {
			listen = "\x00" + name[1:]
		}
		c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: listen, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv("NOTIFY_SOCKET", name)
		if err := sdNotify("READY=1\nSTATUS=ok"); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 256)
		n, err := c.Read(buf)
		c.Close()
		if err != nil || string(buf[:n]) != "READY=1\nSTATUS=ok" {
			t.Fatalf("%s: got %q, %v", name, buf[:n], err)
		}
	}
	t.Setenv("NOTIFY_SOCKET", "")
	if err := sdNotify("READY=1"); err != nil {
		t.Fatalf("without NOTIFY_SOCKET: %v", err)
	}
	t.Setenv("NOTIFY_SOCKET", "relative.sock")
	if err := sdNotify("READY=1"); err == nil {
		t.Fatal("a relative socket name accepted")
	}
	if monotonicUsec() <= 0 {
		t.Fatal("no monotonic clock")
	}
}
