package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hearth/client"
	"hearth/client/mlsgroup"
	"hearth/client/store"
	"hearth/homeserver/wire"
)

// receiptDev is a logged-in device of a new user whose receipts wait
// window (client.Config.ReceiptWindow) while it receives.
func receiptDev(t *testing.T, ts *client.TestServer, name string, window time.Duration) *dev {
	t.Helper()
	prof := t.TempDir()
	c, err := client.Open(client.Config{Profile: prof, Dial: ts.Dial(), Groups: mlsgroup.New(),
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, ReceiptWindow: window})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	d := &dev{t: t, c: c, user: ts.AddUser(t, name, groupPW), profile: prof}
	d.login(groupPW)
	d.drain()
	return d
}

// sealedReceipts counts, by kind, the receipts d encrypts from now on
// (each is sent once: a retry reuses its ciphertext).
func sealedReceipts(d *dev) func() map[string]int {
	var mu sync.Mutex
	n := map[string]int{}
	d.c.WrapSeal(func(ctx context.Context, it store.OutboxItem, next client.SealFunc) (store.OutboxItem, error) {
		if it.Body != nil {
			var b struct {
				Rcpt *struct{ Kind string } `json:"rcpt"`
			}
			if json.Unmarshal(it.Body, &b) == nil && b.Rcpt != nil {
				mu.Lock()
				n[b.Rcpt.Kind]++
				mu.Unlock()
			}
		}
		return next(ctx, it)
	})
	return func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(n)
	}
}

// receiving runs d's Receive in the background, marking what it prints
// read when markRead, until the returned stop is called; printed yields
// the number of messages printed so far.
func receiving(d *dev, markRead bool) (printed func() int, stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	n := 0
	done := make(chan error, 1)
	go func() {
		done <- d.c.Receive(ctx, 0, func(m store.Message) error {
			mu.Lock()
			n++
			mu.Unlock()
			if markRead {
				return d.c.MarkReadMessage(m)
			}
			return nil
		})
	}()
	return func() int { mu.Lock(); defer mu.Unlock(); return n },
		func() error { cancel(); return <-done }
}

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReceiptsCoalesced: receipts queued while a device receives wait
// their window and fold into one per kind and conversation. Bob (a one
// minute window) reads a burst of ten messages as they arrive: nothing is
// sent for them while he receives, his own message to alice is not held
// back by the waiting receipt, and when his Receive ends exactly one read
// receipt (no delivery receipt: the read covers it) goes to the server.
// Alice then sees all ten read and delivered (a read implies delivery).
// Alice (a 3 s window) receives a burst from bob without reading it: at
// most two delivery receipts reach the server, sent by the window's timer
// while her Receive still runs; a read she asks to send (Flush of the
// receipt) goes at once.
func TestReceiptsCoalesced(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	alice := receiptDev(t, ts, "alice", 3*time.Second)
	bob := receiptDev(t, ts, "bob", time.Minute)
	alice.send(bob.user, "hello")
	bob.recv(alice.user + ":hello")
	alice.recv()

	const burst = 10
	bobSealed := sealedReceipts(bob)
	printed, stop := receiving(bob, true)
	base := ts.Accepted()
	var texts []string
	for i := range burst {
		texts = append(texts, fmt.Sprint("m", i))
		alice.send(bob.user, texts[i])
	}
	waitUntil(t, "bob to print the burst", 20*time.Second, func() bool { return printed() == burst })
	bob.send(alice.user, "reply") // not held back by the waiting read receipt
	if got := ts.Accepted() - base; got != burst+1 {
		t.Fatalf("the server accepted %d messages while bob received, want %d (alice's and bob's reply; his receipts wait)", got, burst+1)
	}
	if err := stop(); err != context.Canceled {
		t.Fatalf("bob's Receive ended with %v", err)
	}
	if got := ts.Accepted() - base; got != burst+2 {
		t.Fatalf("the server accepted %d messages, want %d (one read receipt when bob stopped receiving)", got, burst+2)
	}
	if got := bobSealed(); got[client.ReceiptRead] != 1 || got[client.ReceiptDelivered] != 0 {
		t.Fatalf("bob sent receipts %v, want one read receipt and no delivery receipt", got)
	}
	alice.recv(bob.user + ":reply")
	h, err := alice.c.History(bob.user, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range h {
		if m.From == alice.user && slices.Contains(texts, m.Text) &&
			(m.Status != "read" || !slices.Equal(m.DeliveredTo, []string{bob.user}) || !slices.Equal(m.ReadBy, []string{bob.user})) {
			t.Errorf("alice's %q: status %q delivered_to %v read_by %v, want read by and delivered to bob", m.Text, m.Status, m.DeliveredTo, m.ReadBy)
		}
	}

	// Delivery receipts only, sent by the timer while receiving.
	aliceSealed := sealedReceipts(alice)
	printed, stop = receiving(alice, false)
	defer stop()
	base = ts.Accepted()
	for i := range 5 {
		bob.send(alice.user, fmt.Sprint("b", i))
	}
	waitUntil(t, "alice to print bob's burst", 20*time.Second, func() bool { return printed() == 5 })
	waitUntil(t, "alice's delivery receipt, sent while she receives", 20*time.Second, func() bool { return ts.Accepted()-base > 5 })
	waitUntil(t, "alice's receipts to settle", 20*time.Second, func() bool {
		var waiting bool
		alice.c.Store().View(func(tx *store.Tx) error {
			items, _ := tx.Outbox()
			waiting = len(items) > 0
			return nil
		})
		return !waiting
	})
	if got := aliceSealed(); got[client.ReceiptDelivered] < 1 || got[client.ReceiptDelivered] > 2 || got[client.ReceiptRead] != 0 {
		t.Fatalf("alice sent receipts %v for a burst of 5, want one or two delivery receipts", got)
	}
	// An explicit read is sent at once, window or not.
	mark, err := alice.c.MarkRead(bob.user, "")
	if err != nil || mark.ReceiptID == "" {
		t.Fatalf("MarkRead: %+v %v", mark, err)
	}
	before := ts.Accepted()
	fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := alice.c.Flush(fctx, mark.ReceiptID); err != nil {
		t.Fatalf("Flush of the read receipt while receiving: %v", err)
	}
	if ts.Accepted() != before+1 {
		t.Fatalf("the read receipt was not accepted by the server")
	}
}

// TestReceiptFlusherBacksOff: a receipt that keeps failing retryably
// while its device receives is tried again after a growing wait, not in
// a loop, and is sent once the failure passes.
func TestReceiptFlusherBacksOff(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	alice := receiptDev(t, ts, "alice", time.Second)
	bob := receiptDev(t, ts, "bob", 50*time.Millisecond)
	alice.send(bob.user, "hello")
	bob.recv(alice.user + ":hello")

	var failing atomic.Bool
	var tries atomic.Int64
	failing.Store(true)
	bob.c.WrapSeal(func(ctx context.Context, it store.OutboxItem, next client.SealFunc) (store.OutboxItem, error) {
		if it.Body != nil && failing.Load() {
			tries.Add(1)
			return it, wire.Errorf("test", wire.Code_CODE_UNAVAILABLE, "not now")
		}
		return next(ctx, it)
	})
	printed, stop := receiving(bob, true)
	defer stop()
	alice.send(bob.user, "again")
	waitUntil(t, "bob to print the message", 20*time.Second, func() bool { return printed() == 1 })
	waitUntil(t, "bob's receipt to be tried", 20*time.Second, func() bool { return tries.Load() > 0 })
	time.Sleep(2 * time.Second)
	// Each flush tries a failing queue at most three times; the flushes
	// come 0.1, 0.2, 0.4, 0.8 s … apart: about 15 tries in 2 s, where
	// flushing again at once would make about a hundred.
	if n := tries.Load(); n > 30 {
		t.Fatalf("a failing receipt was tried %d times in 2 s", n)
	}
	failing.Store(false)
	base := ts.Accepted()
	waitUntil(t, "bob's receipt to be sent once the failure passed", 20*time.Second, func() bool { return ts.Accepted() > base })
	alice.recv()
	if st := statusOf(t, alice, bob.user, "again"); st != "read" {
		t.Fatalf("alice's message shows %q, want read", st)
	}
}

// TestReceiptsSentOnClose: a one-shot run that catches up on a message
// while it sends its own (its flush ends with its message, before the
// delivery receipt it queued) sends that receipt when it closes the
// client, so the sender sees the message delivered without another run.
func TestReceiptsSentOnClose(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	alice := receiptDev(t, ts, "alice", time.Second)
	prof := t.TempDir()
	open := func() *client.Client {
		c, err := client.Open(client.Config{Profile: prof, Dial: ts.Dial(), Groups: mlsgroup.New(),
			MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	bob := &dev{t: t, c: open(), user: ts.AddUser(t, "bob", groupPW), profile: prof}
	bob.login(groupPW)
	bob.drain()
	alice.send(bob.user, "x")
	bob.recv(alice.user + ":x")
	alice.recv()

	// As `chat send` in a new process: y arrives while z is sent.
	if err := bob.c.Close(); err != nil {
		t.Fatal(err)
	}
	alice.send(bob.user, "y")
	bob.c = open()
	bob.send(alice.user, "z")
	base := ts.Accepted()
	if n := len(bodyItems(t, bob)); n != 1 {
		t.Fatalf("bob's outbox holds %d receipts after sending z, want the delivery receipt of y", n)
	}
	if err := bob.c.Close(); err != nil {
		t.Fatal(err)
	}
	if got := ts.Accepted() - base; got != 1 {
		t.Fatalf("closing bob's client sent %d messages, want 1 (the delivery receipt of y)", got)
	}
	c := open()
	defer c.Close()
	items, err := c.Outbox()
	if err != nil || len(items) != 0 {
		t.Fatalf("bob's outbox after close: %+v %v", items, err)
	}
	alice.recv(bob.user + ":z")
	if st := statusOf(t, alice, bob.user, "y"); st != "delivered" {
		t.Fatalf("alice's y shows %q, want delivered", st)
	}
}
