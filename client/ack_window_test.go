package client_test

import (
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"hearth/client"
	"hearth/client/session"
	"hearth/client/store"
	"hearth/homeserver/wire"
	"hearth/keys/testutil"
)

// TestAckBurstBeyondWindow runs a device's session against the real
// homeserver with a backlog larger than the server's delivery window
// (256) and an ack delay of a minute: the session acknowledges 64 owed
// entries at once, so the pusher never waits for the delay and the whole
// backlog arrives promptly, with a few Acks instead of one per batch.
// Closing the session acknowledges the rest durably.
func TestAckBurstBeyondWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("over 2 s: not in the -short loop")
	}
	ts := client.NewBenchServer(t, "a.example") // send limits lifted
	us := groupUsers(t, ts, "rx", "tx")
	rx, tx := us[0], us[1]
	tx.send(rx.user, "hello") // the conversation, and rx in it
	rx.drain()
	var acct store.Account
	var seq uint64
	if err := rx.c.Store().View(func(stx *store.Tx) (err error) {
		acct, err = stx.Account()
		seq = stx.MailboxSeq()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	rx.c.Close() // rx is offline while the backlog builds up

	const n = 600
	sendRaw(t, tx, rx.user, n)
	head, _ := ts.MailboxState(t, acct.DeviceID)
	if head < seq+n {
		t.Fatalf("mailbox head %d, want at least %d", head, seq+n)
	}

	tx.c.Close() // no other device acks while the server counts
	h := &seqOnlyHandler{processed: seq}
	acksBefore := ts.Acks()
	dial := ts.Dial()
	start := time.Now()
	s := session.Start(context.Background(), session.Config{
		Dial:     func(ctx context.Context) (io.ReadWriteCloser, error) { return dial(ctx, acct.Server, acct.CAPath) },
		Tokens:   &fixedTokens{access: acct.AccessToken, expires: acct.AccessExpires, refresh: acct.RefreshToken},
		Handler:  h,
		AckDelay: time.Minute,
	})
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// CaughtUp, not Resync: a second Sync would restart the pushes and
	// re-push what is in flight (more entries, more Acks).
	if err := s.CaughtUp(ctx); err != nil {
		t.Fatalf("caught up to %d of %d: %v", h.seq(), head, err)
	}
	took := time.Since(start)
	if took > 10*time.Second {
		t.Errorf("the backlog of %d took %v: the pusher waited for the ack delay", n, took)
	}
	if got := h.seq(); got != head {
		t.Fatalf("processed up to %d, want %d", got, head)
	}
	acks := ts.Acks() - acksBefore
	if acks == 0 || acks > n/64 {
		t.Errorf("%d Acks for %d deliveries, want 1..%d (one per 64 owed)", acks, n, n/64)
	}
	t.Logf("%d deliveries in %v with %d Acks", n, took, acks)
	s.Close()
	testutil.WaitFor(t, 10*time.Second, func() error {
		if _, acked := ts.MailboxState(t, acct.DeviceID); acked != head {
			return fmt.Errorf("durable ack %d after close, want %d", acked, head)
		}
		return nil
	})
}

// sendRaw sends n application messages from d to peer (opaque payloads,
// no MLS: only a receiver that does not decrypt reads them), eight in
// flight.
func sendRaw(t *testing.T, d *dev, peer string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs <- d.c.SendRaw(ctx30(t), peer, fmt.Appendf(nil, "raw %d", i))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// seqOnlyHandler is a DeliveryHandler that only records the position.
type seqOnlyHandler struct {
	mu        sync.Mutex
	processed uint64
}

func (h *seqOnlyHandler) seq() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.processed
}

func (h *seqOnlyHandler) ProcessedSeq() (uint64, error) { return h.seq(), nil }

func (h *seqOnlyHandler) HandleDelivery(_ context.Context, d *wire.Delivery) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.processed = max(h.processed, d.GetSeq())
	return nil
}

// fixedTokens are a device's tokens in memory; a refresh replaces them.
type fixedTokens struct {
	mu              sync.Mutex
	access, refresh string
	expires         time.Time
}

func (f *fixedTokens) Tokens() (string, time.Time, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.access, f.expires, f.refresh, nil
}

func (f *fixedTokens) Rotate(stale string, exchange func(string) (string, time.Time, string, error)) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, e, r, err := exchange(f.refresh)
	if err != nil {
		return "", err
	}
	f.access, f.expires, f.refresh = a, e, r
	return a, nil
}
