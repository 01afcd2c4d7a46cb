package session

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"hearth/homeserver/wire"
)

// These tests drive the session's protocol mechanics (multiplexing,
// refresh, resync, cumulative acks, reconnect) against a scripted peer on
// net.Pipe, because they need to control the peer's timing exactly (for
// example answering requests out of order, or dropping the stream at a given
// frame). End-to-end behaviour against the real homeserver is covered in
// the server tests of this package.

// peer is a scripted server end of one stream. It reads continuously (as a
// real server does) so that the client's writes never block on the pipe.
type peer struct {
	in chan *wire.ClientFrame
	fw *wire.FrameWriter
	c  net.Conn
}

func newPeer(c net.Conn) *peer {
	p := &peer{in: make(chan *wire.ClientFrame, 100), fw: wire.NewFrameWriter(c, 0), c: c}
	go func() {
		defer close(p.in)
		fr := wire.NewFrameReader(c, 0)
		for {
			f := new(wire.ClientFrame)
			if err := fr.ReadMessage(f); err != nil {
				return
			}
			p.in <- f
		}
	}()
	return p
}

func (p *peer) read(t *testing.T) *wire.ClientFrame {
	t.Helper()
	select {
	case f, ok := <-p.in:
		if !ok {
			t.Fatal("peer: stream closed")
		}
		return f
	case <-time.After(10 * time.Second):
		t.Fatal("peer: no frame from the client")
		return nil
	}
}

func (p *peer) write(t *testing.T, f *wire.ServerFrame) {
	t.Helper()
	if err := p.fw.WriteMessage(f); err != nil {
		t.Errorf("peer write: %v", err)
	}
}

// pipeDialer hands each dialed stream to the test through a channel.
func pipeDialer(peers chan<- *peer) func(ctx context.Context) (io.ReadWriteCloser, error) {
	return func(ctx context.Context) (io.ReadWriteCloser, error) {
		a, b := net.Pipe()
		select {
		case peers <- newPeer(b):
			return a, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func TestConnMultiplexesOutOfOrder(t *testing.T) {
	a, b := net.Pipe()
	c := NewConn(a, 0)
	defer c.Close()
	p := newPeer(b)
	ctx := context.Background()
	type result struct {
		user string
		err  error
	}
	res := make(chan result, 2)
	go func() {
		r, err := c.Call(ctx, "one", &wire.ClientFrame{Body: &wire.ClientFrame_Ping{Ping: &wire.Ping{}}})
		res <- result{r.GetPong().String(), err}
	}()
	f1 := p.read(t)
	go func() {
		_, err := c.Call(ctx, "two", &wire.ClientFrame{Body: &wire.ClientFrame_ListDevices{ListDevices: &wire.ListDevices{}}})
		res <- result{"two", err}
	}()
	f2 := p.read(t)
	if f1.GetId() == f2.GetId() || f1.GetId() == 0 {
		t.Fatalf("request ids %d, %d", f1.GetId(), f2.GetId())
	}
	// Answer the second first, with an error; then a push; then the first.
	p.write(t, &wire.ServerFrame{Id: f2.GetId(), Body: &wire.ServerFrame_Error{Error: &wire.ErrorInfo{Code: wire.Code_CODE_FORBIDDEN, Message: "no"}}})
	if r := <-res; r.user != "two" || !wire.Is(r.err, wire.Code_CODE_FORBIDDEN) {
		t.Fatalf("second call = %+v, want forbidden", r)
	}
	p.write(t, &wire.ServerFrame{Body: &wire.ServerFrame_Delivery{Delivery: &wire.Delivery{Seq: 1}}})
	p.write(t, &wire.ServerFrame{Id: f1.GetId(), Body: &wire.ServerFrame_Pong{Pong: &wire.Pong{ServerTimeMs: 5}}})
	if r := <-res; r.err != nil || r.user == "" {
		t.Fatalf("first call = %+v", r)
	}
	push, err := c.nextPush(ctx)
	if err != nil || push.GetDelivery().GetSeq() != 1 {
		t.Fatalf("push = %v, %v", push, err)
	}
	b.Close()
	if _, err := c.Call(ctx, "after", &wire.ClientFrame{Body: &wire.ClientFrame_Ping{Ping: &wire.Ping{}}}); !Retryable(err) {
		t.Fatalf("call on closed conn = %v, want retryable disconnect", err)
	}
}

// memTokens is a Tokens in memory.
type memTokens struct {
	mu              sync.Mutex
	access, refresh string
	exp             time.Time
}

func (m *memTokens) Tokens() (string, time.Time, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.access, m.exp, m.refresh, nil
}

func (m *memTokens) Rotate(stale string, exchange func(string) (string, time.Time, string, error)) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, e, r, err := exchange(m.refresh)
	if err != nil {
		return "", err
	}
	m.access, m.exp, m.refresh = a, e, r
	return a, nil
}

// seqHandler records deliveries; its processed seq is what resync asks for.
type seqHandler struct {
	mu   sync.Mutex
	seen []uint64
	last uint64
}

func (h *seqHandler) ProcessedSeq() (uint64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last, nil
}

func (h *seqHandler) HandleDelivery(_ context.Context, d *wire.Delivery) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if d.GetSeq() <= h.last {
		return nil
	}
	h.seen = append(h.seen, d.GetSeq())
	h.last = d.GetSeq()
	return nil
}

func TestSessionRefreshResyncAndAck(t *testing.T) {
	peers := make(chan *peer)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tok := &memTokens{access: "old", refresh: "r1", exp: now.Add(-time.Minute)}
	h := &seqHandler{}
	s := Start(context.Background(), Config{
		Dial: pipeDialer(peers), Tokens: tok, Handler: h,
		Now: func() time.Time { return now }, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
	})
	defer s.Close()

	// First connection: the token expired, so Refresh comes before Hello.
	p := <-peers
	f := p.read(t)
	if f.GetRefresh().GetRefreshToken() != "r1" {
		t.Fatalf("first frame = %v, want Refresh with r1", f)
	}
	p.write(t, &wire.ServerFrame{Id: f.GetId(), Body: &wire.ServerFrame_RefreshOk{RefreshOk: &wire.RefreshOK{
		AccessToken: "new", RefreshToken: "r2", AccessExpiresMs: now.Add(time.Hour).UnixMilli()}}})
	f = p.read(t)
	if f.GetHello().GetAccessToken() != "new" {
		t.Fatalf("frame = %v, want Hello with the refreshed token", f)
	}
	if _, _, r, _ := tok.Tokens(); r != "r2" {
		t.Fatalf("refresh token not saved before use: %q", r)
	}
	p.write(t, &wire.ServerFrame{Id: f.GetId(), Body: &wire.ServerFrame_HelloOk{HelloOk: &wire.HelloOK{DeviceId: "D1"}}})
	f = p.read(t)
	if f.GetSync() == nil || f.GetSync().GetAfterSeq() != 0 {
		t.Fatalf("frame = %v, want Sync after 0", f)
	}
	p.write(t, &wire.ServerFrame{Id: f.GetId(), Body: &wire.ServerFrame_SyncOk{SyncOk: &wire.SyncOK{Head: 2}}})
	for seq := uint64(1); seq <= 2; seq++ {
		p.write(t, &wire.ServerFrame{Body: &wire.ServerFrame_Delivery{Delivery: &wire.Delivery{Seq: seq}}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.CaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	// The ack is cumulative and comes after processing.
	for {
		f = p.read(t)
		if f.GetAck() != nil {
			break
		}
	}
	if f.GetAck().GetUpToSeq() == 0 {
		t.Fatalf("ack = %v", f)
	}
	if f.GetAck().GetUpToSeq() < 2 {
		if f = p.read(t); f.GetAck().GetUpToSeq() != 2 {
			t.Fatalf("second ack = %v, want up to 2", f)
		}
	}

	// Drop the stream: the session reconnects and resumes after seq 2.
	p.c.Close()
	p = <-peers
	f = p.read(t)
	if f.GetHello().GetAccessToken() != "new" {
		t.Fatalf("reconnect frame = %v, want Hello", f)
	}
	p.write(t, &wire.ServerFrame{Id: f.GetId(), Body: &wire.ServerFrame_HelloOk{HelloOk: &wire.HelloOK{DeviceId: "D1"}}})
	f = p.read(t)
	if f.GetSync().GetAfterSeq() != 2 {
		t.Fatalf("resync = %v, want after 2", f)
	}
	p.write(t, &wire.ServerFrame{Id: f.GetId(), Body: &wire.ServerFrame_SyncOk{SyncOk: &wire.SyncOK{Head: 3}}})
	// A stale re-push of 2 and the new 3.
	p.write(t, &wire.ServerFrame{Body: &wire.ServerFrame_Delivery{Delivery: &wire.Delivery{Seq: 2}}})
	p.write(t, &wire.ServerFrame{Body: &wire.ServerFrame_Delivery{Delivery: &wire.Delivery{Seq: 3}}})
	if err := s.CaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	seen := append([]uint64{}, h.seen...)
	h.mu.Unlock()
	if len(seen) != 3 || seen[0] != 1 || seen[1] != 2 || seen[2] != 3 {
		t.Fatalf("processed %v, want [1 2 3] once each", seen)
	}

	// A revocation ends the session for good.
	p.write(t, &wire.ServerFrame{Body: &wire.ServerFrame_Closed{Closed: &wire.SessionClosed{Code: wire.Code_CODE_DEVICE_REVOKED}}})
	select {
	case <-s.Done():
	case <-ctx.Done():
		t.Fatal("session did not stop after revocation")
	}
	if !wire.Is(s.Err(), wire.Code_CODE_DEVICE_REVOKED) {
		t.Fatalf("session error = %v, want device revoked", s.Err())
	}
}

func TestBackoffGrowsWithJitter(t *testing.T) {
	s := &Session{cfg: Config{MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}}
	s.cfg.Rand = newTestRand()
	for attempt, want := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		want *= time.Millisecond
		d := s.Backoff(attempt)
		if d < want/2 || d > want {
			t.Errorf("backoff(%d) = %v, want in [%v, %v]", attempt, d, want/2, want)
		}
	}
}

// TestHelloAndSyncPipelinedAndCounted: the Sync is written right behind
// the Hello, before the Hello's answer (one round trip to connect), and
// the meter counts one round trip for both and a second one for a request
// made once connected.
func TestHelloAndSyncPipelinedAndCounted(t *testing.T) {
	peers := make(chan *peer)
	m := &Meter{}
	tok := &memTokens{access: "tok", refresh: "r", exp: time.Now().Add(time.Hour)}
	s := Start(context.Background(), Config{Dial: pipeDialer(peers), Tokens: tok, Handler: &seqHandler{}, Meter: m})
	defer s.Close()
	p := <-peers
	hello := p.read(t)
	sync := p.read(t) // read before anything was answered
	if hello.GetHello() == nil || sync.GetSync() == nil {
		t.Fatalf("first frames %v, %v: want Hello then Sync", hello, sync)
	}
	p.write(t, &wire.ServerFrame{Id: hello.GetId(), Body: &wire.ServerFrame_HelloOk{HelloOk: &wire.HelloOK{DeviceId: "D1"}}})
	p.write(t, &wire.ServerFrame{Id: sync.GetId(), Body: &wire.ServerFrame_SyncOk{SyncOk: &wire.SyncOK{}}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := s.Call(ctx, "client.Ping", &wire.ClientFrame{Body: &wire.ClientFrame_Ping{Ping: &wire.Ping{}}})
		done <- err
	}()
	ping := p.read(t)
	p.write(t, &wire.ServerFrame{Id: ping.GetId(), Body: &wire.ServerFrame_Pong{Pong: &wire.Pong{}}})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st := m.Stats()
	want := map[string]int{"client.Hello": 1, "client.Sync": 1, "client.Ping": 2}
	for op, rt := range want {
		if got := st.Ops[op]; got.Count != 1 || got.RoundTrip != rt {
			t.Errorf("%s: %+v, want 1 answer at round trip %d", op, got, rt)
		}
	}
	if st.RoundTrips != 2 || st.Requests != 3 || len(st.Connections) != 1 {
		t.Errorf("stats %+v, want 2 round trips, 3 requests, 1 connection", st)
	}
}

// TestSyncRefusedBehindRefusedHello: a Hello refused as unauthenticated
// takes the pipelined Sync with it; after a Refresh both go again.
func TestSyncRefusedBehindRefusedHello(t *testing.T) {
	peers := make(chan *peer)
	tok := &memTokens{access: "old", refresh: "r1", exp: time.Now().Add(time.Hour)}
	s := Start(context.Background(), Config{Dial: pipeDialer(peers), Tokens: tok, Handler: &seqHandler{}, Meter: &Meter{}})
	defer s.Close()
	p := <-peers
	hello, sync := p.read(t), p.read(t)
	unauth := &wire.ErrorInfo{Code: wire.Code_CODE_UNAUTHENTICATED}
	p.write(t, &wire.ServerFrame{Id: hello.GetId(), Body: &wire.ServerFrame_Error{Error: unauth}})
	p.write(t, &wire.ServerFrame{Id: sync.GetId(), Body: &wire.ServerFrame_Error{Error: unauth}})
	ref := p.read(t)
	if ref.GetRefresh().GetRefreshToken() != "r1" {
		t.Fatalf("after the refused Hello: %v, want Refresh", ref)
	}
	p.write(t, &wire.ServerFrame{Id: ref.GetId(), Body: &wire.ServerFrame_RefreshOk{RefreshOk: &wire.RefreshOK{
		AccessToken: "new", RefreshToken: "r2", AccessExpiresMs: time.Now().Add(time.Hour).UnixMilli()}}})
	hello, sync = p.read(t), p.read(t)
	if hello.GetHello().GetAccessToken() != "new" || sync.GetSync() == nil {
		t.Fatalf("after the refresh: %v, %v; want Hello with the new token, then Sync", hello, sync)
	}
	p.write(t, &wire.ServerFrame{Id: hello.GetId(), Body: &wire.ServerFrame_HelloOk{HelloOk: &wire.HelloOK{DeviceId: "D1"}}})
	p.write(t, &wire.ServerFrame{Id: sync.GetId(), Body: &wire.ServerFrame_SyncOk{SyncOk: &wire.SyncOK{}}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Live(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestCallPipelinedBehindHello: a request made while the Hello is
// unanswered is written behind Hello and Sync at once (the same round
// trip); when the Hello is refused, the request fails with ErrDisconnected
// (the server refused it unauthenticated) and is not taken for the
// server's answer.
func TestCallPipelinedBehindHello(t *testing.T) {
	for _, refuse := range []bool{false, true} {
		peers := make(chan *peer)
		m := &Meter{}
		tok := &memTokens{access: "tok", refresh: "r", exp: time.Now().Add(time.Hour)}
		s := Start(context.Background(), Config{Dial: pipeDialer(peers), Tokens: tok, Handler: &seqHandler{}, Meter: m})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		p := <-peers
		hello, sync := p.read(t), p.read(t)
		type answer struct {
			r   *wire.ServerFrame
			err error
		}
		done := make(chan answer, 1)
		go func() {
			r, err := s.Call(ctx, "client.Ping", &wire.ClientFrame{Body: &wire.ClientFrame_Ping{Ping: &wire.Ping{}}})
			done <- answer{r, err}
		}()
		ping := p.read(t) // before Hello or Sync were answered
		if ping.GetPing() == nil {
			t.Fatalf("third frame %v, want the Ping", ping)
		}
		if refuse {
			unauth := &wire.ServerFrame_Error{Error: &wire.ErrorInfo{Code: wire.Code_CODE_UNAUTHENTICATED}}
			for _, f := range []*wire.ClientFrame{hello, sync, ping} {
				p.write(t, &wire.ServerFrame{Id: f.GetId(), Body: unauth})
			}
			a := <-done
			if !errors.Is(a.err, ErrDisconnected) || wire.Is(a.err, wire.Code_CODE_UNAUTHENTICATED) {
				t.Errorf("Ping behind a refused Hello: %v, want ErrDisconnected (not the refusal)", a.err)
			}
		} else {
			p.write(t, &wire.ServerFrame{Id: hello.GetId(), Body: &wire.ServerFrame_HelloOk{HelloOk: &wire.HelloOK{DeviceId: "D1"}}})
			p.write(t, &wire.ServerFrame{Id: sync.GetId(), Body: &wire.ServerFrame_SyncOk{SyncOk: &wire.SyncOK{}}})
			p.write(t, &wire.ServerFrame{Id: ping.GetId(), Body: &wire.ServerFrame_Pong{Pong: &wire.Pong{}}})
			a := <-done
			if a.err != nil || a.r.GetPong() == nil {
				t.Fatalf("pipelined Ping: %v, %v", a.r, a.err)
			}
			if o := m.Stats().Ops["client.Ping"]; o.RoundTrip != 1 {
				t.Errorf("pipelined Ping answered at round trip %d, want 1 (with Hello and Sync)", o.RoundTrip)
			}
		}
		cancel()
		s.Close()
	}
}

// TestMeterListsBoundedConnections: a process that reconnects for days
// keeps a bounded list of connections in its meter.
func TestMeterListsBoundedConnections(t *testing.T) {
	m := &Meter{}
	for range maxConnRecords + 5 {
		ct := m.attach(nil)
		m.started(ct)
		m.answered(ct, "client.Ping", 1)
	}
	st := m.Stats()
	if len(st.Connections) != maxConnRecords || st.Unlisted != 5 || st.Ops["client.Ping"].Count != maxConnRecords+5 {
		t.Errorf("%d listed, %d unlisted, %+v; want %d, 5, %d pings", len(st.Connections), st.Unlisted, st.Ops["client.Ping"], maxConnRecords, maxConnRecords+5)
	}
}

// retryConn is a pipe end that says it is a WebSocket fallback.
type retryConn struct {
	net.Conn
	after time.Duration
}

func (r retryConn) RetryQUICAfter() time.Duration { return r.after }

// TestFallbackConnectionLeftForQUIC: a connection the transport marks as a
// fallback is ended once its retry period passed and no request waits,
// and the session dials again (where the transport tries WebTransport
// first); a connection without the mark is kept.
func TestFallbackConnectionLeftForQUIC(t *testing.T) {
	for _, fallback := range []bool{true, false} {
		peers := make(chan *peer)
		dial := func(ctx context.Context) (io.ReadWriteCloser, error) {
			a, b := net.Pipe()
			select {
			case peers <- newPeer(b):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if fallback {
				return retryConn{a, 50 * time.Millisecond}, nil
			}
			return a, nil
		}
		tok := &memTokens{access: "tok", refresh: "r", exp: time.Now().Add(time.Hour)}
		s := Start(context.Background(), Config{Dial: dial, Tokens: tok, Meter: &Meter{}, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond})
		p := <-peers
		hello := p.read(t)
		p.write(t, &wire.ServerFrame{Id: hello.GetId(), Body: &wire.ServerFrame_HelloOk{HelloOk: &wire.HelloOK{DeviceId: "D1"}}})
		select {
		case p2 := <-peers:
			if !fallback {
				t.Fatal("a connection that is no fallback was ended")
			}
			if f := p2.read(t); f.GetHello() == nil {
				t.Fatalf("after leaving the fallback: %v, want a new Hello", f)
			}
		case <-time.After(500 * time.Millisecond): // 10× the retry period
			if fallback {
				t.Fatal("the fallback connection was kept")
			}
		}
		s.Close()
	}
}
