package session

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"hearth/homeserver/wire"
	"hearth/keys/testutil"
)

// A write blocked on the stream (the server reads nothing: flow control
// stalls a QUIC stream the same way) ends with the caller's context: the
// call returns its context's error at once, and the connection, whose
// frame may be half written, is failed for everyone.
func TestCallBlockedWriteHonoursContext(t *testing.T) {
	a, b := net.Pipe() // unbuffered: a write blocks until the other side reads
	defer b.Close()
	c := NewConnMeter(a, 0, &Meter{})
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, "client.Ping", &wire.ClientFrame{Body: &wire.ClientFrame_Ping{Ping: &wire.Ping{}}})
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Call blocked in its write past its context")
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Call returned after %v, want about 200 ms", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call = %v, want context.DeadlineExceeded", err)
	}
	if !errors.Is(c.Err(), ErrDisconnected) {
		t.Fatalf("Conn.Err = %v, want the connection failed", c.Err())
	}
	if _, err := c.Call(context.Background(), "client.Ping", &wire.ClientFrame{Body: &wire.ClientFrame_Ping{Ping: &wire.Ping{}}}); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("Call after the abandoned write = %v, want ErrDisconnected", err)
	}
}

// A request waiting for another request's blocked write gives up with its
// own context without failing the connection (it wrote nothing), and
// requests written one after another arrive in that order.
func TestStartWaitingForWriteHonoursContext(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	c := NewConnMeter(a, 0, &Meter{})
	defer c.Close()

	// The Ack's write blocks: nobody reads yet, and its context never ends.
	c.acks = &acker{conn: c, owed: 7, count: 1}
	acked := make(chan error, 1)
	go func() { acked <- c.writeAck(context.Background()) }()
	testutil.WaitFor(t, 5*time.Second, func() error {
		if len(c.wslot) == 0 {
			return errors.New("the Ack is not being written")
		}
		return nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := c.Start(ctx, "client.Send", &wire.ClientFrame{Body: &wire.ClientFrame_Ping{Ping: &wire.Ping{}}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start behind a blocked write = %v, want context.DeadlineExceeded", err)
	}
	if err := c.Err(); err != nil {
		t.Fatalf("Conn.Err = %v after a request that wrote nothing gave up, want nil", err)
	}

	// The server reads again: the Ack goes out, then the requests in order.
	p := newPeer(b)
	if f := p.read(t); f.GetAck().GetUpToSeq() != 7 {
		t.Fatalf("first frame = %v, want the Ack", f)
	}
	if err := <-acked; err != nil {
		t.Fatalf("writeAck = %v", err)
	}
	for i := range 3 {
		if _, err := c.Start(context.Background(), "client.Sync", &wire.ClientFrame{Body: &wire.ClientFrame_Sync{Sync: &wire.Sync{AfterSeq: uint64(i)}}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if f := p.read(t); f.GetSync().GetAfterSeq() != uint64(i) {
			t.Fatalf("frame %d = %v, want Sync after %d", i, f, i)
		}
	}
}

// A context that ends after its request was written leaves the connection
// up: the watchdog is disarmed once the frame is out.
func TestWriteWatchdogDisarmedAfterWrite(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	c := NewConnMeter(a, 0, &Meter{})
	defer c.Close()
	p := newPeer(b)
	ctx, cancel := context.WithCancel(context.Background())
	wait, err := c.Start(ctx, "client.Ping", &wire.ClientFrame{Body: &wire.ClientFrame_Ping{Ping: &wire.Ping{}}})
	if err != nil {
		t.Fatal(err)
	}
	f := p.read(t)
	cancel()
	if _, err := wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait = %v, want context.Canceled", err)
	}
	p.write(t, &wire.ServerFrame{Id: f.GetId(), Body: &wire.ServerFrame_Pong{Pong: &wire.Pong{}}})
	if err := c.Err(); err != nil {
		t.Fatalf("Conn.Err = %v, want the connection up", err)
	}
	go func() {
		f := p.read(t)
		p.write(t, &wire.ServerFrame{Id: f.GetId(), Body: &wire.ServerFrame_Pong{Pong: &wire.Pong{ServerTimeMs: 1}}})
	}()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if r, err := c.Call(ctx2, "client.Ping", &wire.ClientFrame{Body: &wire.ClientFrame_Ping{Ping: &wire.Ping{}}}); err != nil || r.GetPong().GetServerTimeMs() != 1 {
		t.Fatalf("Call after a cancelled one = %v, %v", r, err)
	}
}

// BenchmarkCall is one request and its answer over a pipe, with a
// cancellable context (the write's watchdog is armed and disarmed).
func BenchmarkCall(b *testing.B) {
	x, y := net.Pipe()
	c := NewConnMeter(x, 0, &Meter{})
	defer c.Close()
	go func() {
		fr, fw := wire.NewFrameReader(y, 0), wire.NewFrameWriter(y, 0)
		for {
			var f wire.ClientFrame
			if err := fr.ReadMessage(&f); err != nil {
				return
			}
			fw.WriteMessage(&wire.ServerFrame{Id: f.GetId(), Body: &wire.ServerFrame_Pong{Pong: &wire.Pong{}}})
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Call(ctx, "client.Ping", &wire.ClientFrame{Body: &wire.ClientFrame_Ping{Ping: &wire.Ping{}}}); err != nil {
			b.Fatal(err)
		}
	}
}
