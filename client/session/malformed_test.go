package session

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"hearth/homeserver/wire"
)

// errorLog records the messages of ERROR records.
type errorLog struct {
	mu   sync.Mutex
	msgs []string
}

func (l *errorLog) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelError }
func (l *errorLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.msgs = append(l.msgs, r.Message)
	l.mu.Unlock()
	return nil
}
func (l *errorLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *errorLog) WithGroup(string) slog.Handler      { return l }

func (l *errorLog) has(prefix string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.msgs {
		if strings.HasPrefix(m, prefix) {
			return true
		}
	}
	return false
}

// TestMalformedFrameReported: a frame that does not decode shows a stream
// out of step (a server or transport fault: the stream is reliable). The
// session reports it at ERROR, processes nothing of it and reconnects,
// resuming after the last delivery it processed. Before, it was logged at
// debug as any lost connection, and a churn test could not see it.
func TestMalformedFrameReported(t *testing.T) {
	peers := make(chan *peer)
	logs := &errorLog{}
	h := &seqHandler{}
	s := Start(context.Background(), Config{
		Dial: pipeDialer(peers), Tokens: &memTokens{access: "a", refresh: "r", exp: time.Now().Add(time.Hour)}, Handler: h,
		Logger: slog.New(logs), MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
	})
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	p := <-peers
	f := p.read(t)
	p.write(t, &wire.ServerFrame{Id: f.GetId(), Body: &wire.ServerFrame_HelloOk{HelloOk: &wire.HelloOK{DeviceId: "D1"}}})
	f = p.read(t)
	p.write(t, &wire.ServerFrame{Id: f.GetId(), Body: &wire.ServerFrame_SyncOk{SyncOk: &wire.SyncOK{Head: 1}}})
	p.write(t, &wire.ServerFrame{Body: &wire.ServerFrame_Delivery{Delivery: &wire.Delivery{Seq: 1}}})
	if err := s.CaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	if logs.has("a frame from the server did not decode") {
		t.Fatal("reported before any malformed frame")
	}
	// A frame of 4 bytes that are no ServerFrame (field 0 is invalid).
	if _, err := p.c.Write([]byte{4, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	p = <-peers // it reconnected
	if !logs.has("a frame from the server did not decode") {
		t.Fatalf("not reported at ERROR; errors logged: %q", logs.msgs)
	}
	f = p.read(t)
	p.write(t, &wire.ServerFrame{Id: f.GetId(), Body: &wire.ServerFrame_HelloOk{HelloOk: &wire.HelloOK{DeviceId: "D1"}}})
	if f = p.read(t); f.GetSync().GetAfterSeq() != 1 {
		t.Fatalf("resync = %v, want after 1", f)
	}
}
