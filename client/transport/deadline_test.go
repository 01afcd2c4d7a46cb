package transport

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"hearth/client/session"
	"hearth/homeserver/wire"
)

// deafServer accepts a stream and never reads it, so the client's writes
// stall once flow control (QUIC) or the socket buffers (TCP) are full.
type deafServer struct{}

func (deafServer) ServeStream(ctx context.Context, rwc io.ReadWriteCloser, remote string) {
	<-ctx.Done()
	rwc.Close()
}

// A write blocked because the server reads nothing returns once a write
// deadline passes, on every protocol: what client/session relies on to end
// a request's write when its context ends.
func TestWriteDeadlineEndsBlockedWrite(t *testing.T) {
	ts := startServer(t, deafServer{}, false)
	for _, opts := range []DialOptions{{QUICOnly: true}, {WebTransportOnly: true}, {ForceWebSocket: true}} {
		opts.RootCAs = ts.roots
		rw, err := Dial(testCtx(t), ts.addr, opts)
		if err != nil {
			t.Fatal(err)
		}
		c := rw.(*Conn)
		var written atomic.Int64
		done := make(chan error, 1)
		go func() {
			b := make([]byte, 64<<10)
			for written.Load() < 256<<20 {
				n, err := c.Write(b)
				written.Add(int64(n))
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		// Blocked: no progress for 300 ms.
		for last := int64(-1); ; {
			time.Sleep(300 * time.Millisecond)
			n := written.Load()
			if n == last {
				break
			}
			last = n
		}
		start := time.Now()
		if err := c.SetWriteDeadline(time.Now()); err != nil {
			t.Fatalf("%s: SetWriteDeadline: %v", c.Protocol(), err)
		}
		select {
		case err := <-done:
			if err == nil {
				t.Fatalf("%s: the server took %d bytes without reading", c.Protocol(), written.Load())
			}
			t.Logf("%s: blocked after %d KiB; the deadline ended the write in %v: %v", c.Protocol(), written.Load()>>10, time.Since(start), err)
		case <-time.After(2 * time.Second):
			t.Fatalf("%s: the write stayed blocked after its deadline", c.Protocol())
		}
		closed := make(chan struct{})
		go func() { c.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: Close hangs", c.Protocol())
		}
	}
}

// A request whose frame the stalled server does not take returns with its
// context, over the real transports, and fails its connection.
func TestSessionCallOnStalledServerHonoursContext(t *testing.T) {
	ts := startServer(t, deafServer{}, false)
	big := &wire.ClientFrame{Body: &wire.ClientFrame_Send{Send: &wire.Send{MessageId: "m1", Payload: make([]byte, 4<<20)}}}
	for _, opts := range []DialOptions{{QUICOnly: true}, {WebTransportOnly: true}, {ForceWebSocket: true}} {
		opts.RootCAs = ts.roots
		rw, err := Dial(testCtx(t), ts.addr, opts)
		if err != nil {
			t.Fatal(err)
		}
		proto := rw.(*Conn).Protocol()
		c := session.NewConnMeter(rw, 0, &session.Meter{})
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		start := time.Now()
		_, err = c.Call(ctx, "client.Send", big)
		cancel()
		if took := time.Since(start); took > time.Second {
			t.Errorf("%s: Call returned after %v, want about 200 ms", proto, took)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s: Call = %v, want context.DeadlineExceeded", proto, err)
		}
		if !errors.Is(c.Err(), session.ErrDisconnected) {
			t.Fatalf("%s: Conn.Err = %v, want failed", proto, c.Err())
		}
	}
}
