package client_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hearth/client"
	"hearth/client/mlsgroup"
	"hearth/homeserver/wire"
)

// logRecorder keeps every log record as one line of message and attributes.
type logRecorder struct {
	mu    *sync.Mutex
	lines *[]string
}

func (h logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h logRecorder) Handle(_ context.Context, r slog.Record) error {
	line := r.Message
	r.Attrs(func(a slog.Attr) bool { line += fmt.Sprintf(" %s=%v", a.Key, a.Value); return true })
	h.mu.Lock()
	*h.lines = append(*h.lines, line)
	h.mu.Unlock()
	return nil
}
func (h logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h logRecorder) WithGroup(string) slog.Handler      { return h }

// countingConn counts the device-list requests naming user that the client
// writes (a tee of its frames, decoded).
type countingConn struct {
	io.ReadWriteCloser
	pw *io.PipeWriter
}

func (c countingConn) Write(p []byte) (int, error) {
	c.pw.Write(p)
	return c.ReadWriteCloser.Write(p)
}

func (c countingConn) Close() error {
	c.pw.Close()
	return c.ReadWriteCloser.Close()
}

// countAsks wraps dial so that asks counts FetchDeviceList(s) naming user.
func countAsks(dial client.DialFunc, user string, asks *atomic.Int64) client.DialFunc {
	return func(ctx context.Context, addr, ca string) (io.ReadWriteCloser, error) {
		rw, err := dial(ctx, addr, ca)
		if err != nil {
			return nil, err
		}
		pr, pw := io.Pipe()
		go func() {
			fr := wire.NewFrameReader(pr, 0)
			for {
				var f wire.ClientFrame
				if err := fr.ReadMessage(&f); err != nil {
					pr.CloseWithError(err)
					return
				}
				if f.GetFetchDeviceList().GetUser() == user || slices.Contains(f.GetFetchDeviceLists().GetUsers(), user) {
					asks.Add(1)
				}
			}
		}()
		return countingConn{rw, pw}, nil
	}
}

// TestSendToUnreachableServerUsesHeldList: with bob's server down, alice's
// messages to him are queued by her own server (the hub) and her device
// keeps bob's devices as it holds them. The first send finds bob's server
// unreachable; a send from a new run of her profile (as the next `hearth
// chat send`) does not ask about bob's devices at all while the server is
// known unreachable, so it costs no remote round trip.
func TestSendToUnreachableServerUsesHeldList(t *testing.T) {
	srvs := client.NewFedTestServers(t, "a.example", "b.example")
	a, b := srvs[0], srvs[1]
	const pw = "correct horse battery"
	alice := newDev(t, a, a.AddUser(t, "alice", pw))
	alice.login(pw)
	bob := newDev(t, b, b.AddUser(t, "bob", pw))
	bob.login(pw)
	alice.send(bob.user, "hi")
	bob.recv(alice.user + ":hi")
	b.Stop()

	var asks atomic.Int64
	run := func(text string) []string {
		var lines []string
		c, err := client.Open(client.Config{Profile: alice.profile, Dial: countAsks(a.Dial(), bob.user, &asks), Groups: mlsgroup.New(),
			MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, Logger: slog.New(logRecorder{lines: &lines, mu: new(sync.Mutex)})})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		id, err := c.Queue(bob.user, text)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Flush(ctx30(t), id); err != nil {
			t.Fatalf("send %q with bob's server down: %v", text, err)
		}
		return lines
	}
	kept := func(lines []string) string {
		for _, l := range lines {
			if strings.HasPrefix(l, "device list unavailable") && strings.Contains(l, bob.user) {
				return l
			}
		}
		t.Fatalf("bob's devices were not kept as held: log %q", lines)
		return ""
	}
	alice.c.Close()
	kept(run("while down 1"))
	if n := asks.Load(); n != 1 {
		t.Fatalf("the first send with bob's server down asked %d times about his devices, want once", n)
	}
	kept(run("while down 2"))
	if n := asks.Load(); n != 1 {
		t.Fatalf("the next send asked about bob's devices again (%d asks in all)", n)
	}
}
