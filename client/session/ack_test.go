package session

import (
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"hearth/homeserver/wire"
)

// writeCounter counts the Write calls on the client's end of a stream.
type writeCounter struct {
	net.Conn
	n *atomic.Int64
}

func (w writeCounter) Write(b []byte) (int, error) {
	w.n.Add(1)
	return w.Conn.Write(b)
}

// ackRig is a session with a handler on a scripted peer, connected and
// synced after seq 0.
type ackRig struct {
	s      *Session
	h      *seqHandler
	peers  chan *peer
	p      *peer
	writes *atomic.Int64 // Write calls on the client's end, all connections
}

func startAckRig(t *testing.T, delay time.Duration) *ackRig {
	t.Helper()
	r := &ackRig{h: &seqHandler{}, peers: make(chan *peer), writes: new(atomic.Int64)}
	dial := func(ctx context.Context) (io.ReadWriteCloser, error) {
		a, b := net.Pipe()
		select {
		case r.peers <- newPeer(b):
			return writeCounter{a, r.writes}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	r.s = Start(context.Background(), Config{Dial: dial, Tokens: &memTokens{access: "a", refresh: "r"}, Handler: r.h,
		MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, AckDelay: delay, Meter: &Meter{}})
	t.Cleanup(r.s.Close)
	r.connect(t, 0)
	return r
}

// connect answers the next connection's Hello and its Sync after want.
func (r *ackRig) connect(t *testing.T, want uint64) {
	t.Helper()
	r.p = <-r.peers
	f := r.p.read(t)
	if f.GetHello() == nil {
		t.Fatalf("first frame = %v, want Hello", f)
	}
	r.p.write(t, &wire.ServerFrame{Id: f.GetId(), Body: &wire.ServerFrame_HelloOk{HelloOk: &wire.HelloOK{DeviceId: "D1"}}})
	f = r.p.read(t)
	if f.GetSync() == nil || f.GetSync().GetAfterSeq() != want {
		t.Fatalf("frame = %v, want Sync after %d", f, want)
	}
	r.p.write(t, &wire.ServerFrame{Id: f.GetId(), Body: &wire.ServerFrame_SyncOk{SyncOk: &wire.SyncOK{Head: want}}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := r.s.Live(ctx); err != nil {
		t.Fatal(err)
	}
}

// deliver pushes deliveries from..to in one burst and waits until the
// session processed them.
func (r *ackRig) deliver(t *testing.T, from, to uint64) {
	t.Helper()
	for seq := from; seq <= to; seq++ {
		r.p.write(t, &wire.ServerFrame{Body: &wire.ServerFrame_Delivery{Delivery: &wire.Delivery{Seq: seq}}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for r.h.ProcessedSeqNow() < to {
		next, _, _ := r.s.Progress()
		if r.h.ProcessedSeqNow() >= to {
			break
		}
		select {
		case <-next:
		case <-ctx.Done():
			t.Fatalf("processed up to %d of %d", r.h.ProcessedSeqNow(), to)
		}
	}
}

func (h *seqHandler) ProcessedSeqNow() uint64 {
	seq, _ := h.ProcessedSeq()
	return seq
}

// acks reads the frames the client writes within d; each must be an Ack.
func (p *peer) acks(t *testing.T, d time.Duration) []uint64 {
	t.Helper()
	var out []uint64
	timeout := time.After(d)
	for {
		select {
		case f, ok := <-p.in:
			if !ok {
				return out
			}
			if f.GetAck() == nil {
				t.Fatalf("frame %v, want only Acks", f)
			}
			out = append(out, f.GetAck().GetUpToSeq())
		case <-timeout:
			return out
		}
	}
}

// A burst of deliveries is acknowledged with one Ack after the delay, not
// one per processed batch.
func TestAckCoalescesBurst(t *testing.T) {
	const delay = 400 * time.Millisecond
	r := startAckRig(t, delay)
	start := time.Now()
	const n = 20
	for seq := uint64(1); seq <= n; seq++ {
		r.p.write(t, &wire.ServerFrame{Body: &wire.ServerFrame_Delivery{Delivery: &wire.Delivery{Seq: seq}}})
		time.Sleep(time.Millisecond) // most arrive alone: a batch of their own
	}
	f := r.p.read(t)
	took := time.Since(start)
	if f.GetAck().GetUpToSeq() != n {
		t.Fatalf("first frame %v, want one Ack up to %d", f, n)
	}
	if took < delay {
		t.Errorf("Ack after %v, before the %v delay", took, delay)
	}
	if took > delay+2*time.Second {
		t.Errorf("Ack after %v, long past the %v delay", took, delay)
	}
	if more := r.p.acks(t, 2*delay); len(more) != 0 {
		t.Fatalf("more Acks after the first: %v", more)
	}
}

// An owed Ack rides in front of the next frame the session writes, in the
// same stream write, and is not written again after the delay.
func TestAckRidesWithNextFrame(t *testing.T) {
	r := startAckRig(t, time.Minute)
	r.deliver(t, 1, 3)
	before := r.writes.Load()
	done := make(chan error, 1)
	go func() {
		_, err := r.s.Call(context.Background(), "client.Ping", &wire.ClientFrame{Body: &wire.ClientFrame_Ping{Ping: &wire.Ping{}}})
		done <- err
	}()
	if f := r.p.read(t); f.GetAck().GetUpToSeq() != 3 {
		t.Fatalf("frame %v, want the owed Ack up to 3", f)
	}
	f := r.p.read(t)
	if f.GetPing() == nil {
		t.Fatalf("frame %v, want the Ping behind the Ack", f)
	}
	if w := r.writes.Load() - before; w != 1 {
		t.Errorf("Ack and Ping took %d writes, want 1", w)
	}
	r.p.write(t, &wire.ServerFrame{Id: f.GetId(), Body: &wire.ServerFrame_Pong{Pong: &wire.Pong{}}})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Nothing owed: the next request goes alone.
	go func() {
		_, err := r.s.Call(context.Background(), "client.Ping", &wire.ClientFrame{Body: &wire.ClientFrame_Ping{Ping: &wire.Ping{}}})
		done <- err
	}()
	if f := r.p.read(t); f.GetPing() == nil {
		t.Fatalf("frame %v, want a Ping alone", f)
	}
}

// Closing the session writes the owed Ack before the stream ends.
func TestAckFlushedOnClose(t *testing.T) {
	r := startAckRig(t, time.Minute)
	r.deliver(t, 1, 3)
	r.s.Close()
	if got := r.p.acks(t, 5*time.Second); len(got) != 1 || got[0] != 3 {
		t.Fatalf("Acks on close %v, want [3]", got)
	}
}

// ackAtOnce owed entries are acknowledged without waiting for the delay,
// so that the server's delivery window never waits for it; fewer stay
// owed.
func TestAckAtOnceKeepsWindowOpen(t *testing.T) {
	r := startAckRig(t, time.Minute)
	const n = 3*ackAtOnce + 10
	r.deliver(t, 1, n)
	got := r.p.acks(t, 300*time.Millisecond)
	if len(got) < 2 || len(got) > 3 || got[len(got)-1] <= n-ackAtOnce {
		t.Fatalf("Acks %v for %d deliveries with a minute's delay, want 2 or 3, the last beyond %d", got, n, n-ackAtOnce)
	}
	prev := uint64(0)
	for _, seq := range got {
		if seq-prev < ackAtOnce {
			t.Fatalf("Acks %v: one covers fewer than %d entries", got, ackAtOnce)
		}
		prev = seq
	}
	last := got[len(got)-1]
	r.s.Close()
	got = r.p.acks(t, 2*time.Second)
	if last < n && (len(got) != 1 || got[0] != n) || last == n && len(got) != 0 {
		t.Fatalf("Acks on close %v after the last at %d, want everything up to %d acknowledged once", got, last, n)
	}
}

// An Ack owed when the connection broke goes out on the next one, after
// its Hello and Sync (which resumes from the device's own position).
func TestAckOwedAcrossReconnect(t *testing.T) {
	r := startAckRig(t, time.Minute)
	r.deliver(t, 1, 3)
	r.p.c.Close()
	r.connect(t, 3)
	if f := r.p.read(t); f.GetAck().GetUpToSeq() != 3 {
		t.Fatalf("frame on the new connection %v, want the owed Ack up to 3", f)
	}
}

// A negative delay acknowledges every processed batch at once.
func TestAckWithoutDelay(t *testing.T) {
	r := startAckRig(t, -1)
	r.deliver(t, 1, 1)
	if f := r.p.read(t); f.GetAck().GetUpToSeq() != 1 {
		t.Fatalf("frame %v, want Ack up to 1", f)
	}
	r.deliver(t, 2, 2)
	if f := r.p.read(t); f.GetAck().GetUpToSeq() != 2 {
		t.Fatalf("frame %v, want Ack up to 2", f)
	}
}

// A Sync (Resync) carries the owed Ack in front of it, so the server
// records the device's position before it restarts pushes.
func TestAckRidesWithSync(t *testing.T) {
	r := startAckRig(t, time.Minute)
	r.deliver(t, 1, 5)
	before := r.writes.Load()
	done := make(chan error, 1)
	go func() { done <- r.s.Sync(context.Background()) }()
	if f := r.p.read(t); f.GetAck().GetUpToSeq() != 5 {
		t.Fatalf("frame %v, want the owed Ack up to 5", f)
	}
	f := r.p.read(t)
	if f.GetSync().GetAfterSeq() != 5 {
		t.Fatalf("frame %v, want Sync after 5 behind the Ack", f)
	}
	if w := r.writes.Load() - before; w != 1 {
		t.Errorf("Ack and Sync took %d writes, want 1", w)
	}
	r.p.write(t, &wire.ServerFrame{Id: f.GetId(), Body: &wire.ServerFrame_SyncOk{SyncOk: &wire.SyncOK{Head: 5}}})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
