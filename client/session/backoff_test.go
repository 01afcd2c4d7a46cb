package session

import (
	"context"
	"errors"
	"testing"
	"time"

	"hearth/homeserver/wire"
)

// failingHandler fails every delivery, as a passing local failure does.
type failingHandler struct{}

func (failingHandler) ProcessedSeq() (uint64, error) { return 0, nil }
func (failingHandler) HandleDelivery(context.Context, *wire.Delivery) error {
	return errors.New("cannot process now")
}

// TestReconnectBacksOffWhenHandlerFails: a delivery whose processing
// fails ends the connection, and the session reconnects to process it
// again. Each such connection comes up, yet made no progress, so the
// delays keep growing (from MinBackoff, doubling up to MaxBackoff) instead
// of starting again from the shortest each time (hundreds of reconnects a
// second, for as long as the failure lasts).
func TestReconnectBacksOffWhenHandlerFails(t *testing.T) {
	peers := make(chan *peer)
	s := Start(context.Background(), Config{
		Dial: pipeDialer(peers), Tokens: &memTokens{access: "a", refresh: "r", exp: time.Now().Add(time.Hour)},
		Handler: failingHandler{}, MinBackoff: 20 * time.Millisecond, MaxBackoff: time.Second,
	})
	defer s.Close()
	conns := 0
	end := time.After(1500 * time.Millisecond)
	for {
		var p *peer
		select {
		case p = <-peers:
		case <-end:
			if conns < 3 || conns > 15 {
				t.Fatalf("%d connections in 1.5 s, want 3 to 15 (growing delays)", conns)
			}
			return
		}
		conns++
		f := p.read(t)
		p.write(t, &wire.ServerFrame{Id: f.GetId(), Body: &wire.ServerFrame_HelloOk{HelloOk: &wire.HelloOK{DeviceId: "D1"}}})
		if f = p.read(t); f.GetSync() == nil {
			t.Fatalf("frame = %v, want Sync", f)
		}
		p.write(t, &wire.ServerFrame{Id: f.GetId(), Body: &wire.ServerFrame_SyncOk{SyncOk: &wire.SyncOK{Head: 1}}})
		p.write(t, &wire.ServerFrame{Body: &wire.ServerFrame_Delivery{Delivery: &wire.Delivery{Seq: 1}}})
	}
}
