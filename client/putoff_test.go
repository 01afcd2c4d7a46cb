package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"hearth/client"
	"hearth/client/mlsgroup"
	"hearth/client/store"
)

// historyTexts returns the texts of d's history with user, read with a
// View (which commits what was put off).
func historyTexts(t *testing.T, d *dev, user string) []string {
	t.Helper()
	h, err := d.c.History(user, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range h {
		out = append(out, m.Text)
	}
	return out
}

// TestSentSettledLaterSurvivesACrash: moving an accepted message to
// history is put off to the store's next write (no commit of its own);
// a crash that loses it leaves the sealed item in the outbox, the next
// Flush sends the same bytes under the same id, the server answers as the
// first time, and the message is in history once and reaches bob once.
func TestSentSettledLaterSurvivesACrash(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "alice", "bob")
	alice, bob := us[0], us[1]
	alice.send(bob.user, "first")
	bob.recv(alice.user + ":first")
	deliveredTo(t, alice, bob.user, "first") // bob's receipt is in: no delivery lands in the count below

	before := alice.c.StoreCommits()
	alice.send(bob.user, "settled later")
	if n := alice.c.StoreCommits() - before; n != 1 {
		t.Errorf("queue and send took %d commits, want 1 (queued and sealed together, the settling put off)", n)
	}
	if !alice.c.Store().Pending() {
		t.Fatal("the settling of the sent message is not put off")
	}
	alice.c.Store().DiscardLater() // the process crashes here

	a2 := reopen(t, ts, alice)
	items, err := a2.c.Outbox()
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || items[0].Text != "settled later" || items[0].Payload == nil {
		t.Fatalf("outbox after the crash: %+v, want the sealed item", items)
	}
	if err := a2.c.Flush(ctx30(t), ""); err != nil {
		t.Fatal(err)
	}
	if got := historyTexts(t, a2, bob.user); len(got) != 2 || got[1] != "settled later" {
		t.Fatalf("alice's history %q, want first and the message once", got)
	}
	if items, _ := a2.c.Outbox(); len(items) != 0 {
		t.Fatalf("outbox after the resend: %+v", items)
	}
	bob.recv(alice.user + ":settled later")

	// Without a crash the put-off write rides on the next one (a Queue)
	// or is written when the Client closes.
	a2.send(bob.user, "next")
	if !a2.c.Store().Pending() {
		t.Fatal("the settling of the sent message is not put off")
	}
	if err := a2.c.Close(); err != nil {
		t.Fatal(err)
	}
	a3 := reopen(t, ts, alice)
	if got := historyTexts(t, a3, bob.user); len(got) != 3 || got[2] != "next" {
		t.Fatalf("alice's history after Close %q", got)
	}
	if items, _ := a3.c.Outbox(); len(items) != 0 {
		t.Fatalf("outbox after Close: %+v", items)
	}
}

// TestPrintedRemovedLater: removing printed messages from the inbox is put
// off to the store's next write; the same Client does not print them
// again, a restarted one does not either once it was written (Close), and
// after a crash that lost it they are printed again (at least once).
func TestPrintedRemovedLater(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "alice", "bob")
	alice, bob := us[0], us[1]
	alice.send(bob.user, "one")
	alice.send(bob.user, "two")
	// Receive stores both and stops printing at the first.
	stop := errors.New("stop")
	err := bob.c.Receive(ctx30(t), 300*time.Millisecond, func(store.Message) error { return stop })
	if !errors.Is(err, stop) {
		t.Fatalf("Receive: %v", err)
	}

	drain := func(d *dev) []string {
		t.Helper()
		var got []string
		if _, err := d.c.DrainInbox(func(m store.Message) error { got = append(got, m.Text); return nil }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	var got []string
	for deadline := time.Now().Add(10 * time.Second); len(got) < 2 && time.Now().Before(deadline); {
		got = append(got, drain(bob)...) // "two" may still be on its way
		time.Sleep(10 * time.Millisecond)
	}
	if len(got) != 2 || !bob.c.Store().Pending() {
		t.Fatalf("printed %q (pending %v), want both with the removal put off", got, bob.c.Store().Pending())
	}
	if got := drain(bob); len(got) != 0 {
		t.Fatalf("printed again by the same Client: %q", got)
	}
	bob.c.Store().DiscardLater() // crash
	b2 := reopen(t, ts, bob)
	// "one"'s removal may have ridden on the store write that stored
	// "two"; what was still put off is printed again.
	if again := strings.Join(drain(b2), ","); again != "one,two" && again != "two" {
		t.Fatalf("after a crash printed %q again, want the messages whose removal was put off", again)
	}
	if err := b2.c.Close(); err != nil {
		t.Fatal(err)
	}
	if got := drain(reopen(t, ts, bob)); len(got) != 0 {
		t.Fatalf("after Close printed %q again", got)
	}
}

// TestQueueSealsWhenNothingWaits: a message queued on a device whose
// session is caught up, to a conversation whose roster is fresh and whose
// queue is empty, is encrypted in the transaction that queues it (one
// commit); so is one queued behind it, which is sealed (one behind an item
// that waits to be encrypted is not: TestOutboxQueueSealed in
// client/store), so the messages are encrypted and arrive in their order.
func TestQueueSealsWhenNothingWaits(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "alice", "bob")
	alice, bob := us[0], us[1]
	alice.send(bob.user, "first")
	bob.recv(alice.user + ":first")
	deliveredTo(t, alice, bob.user, "first") // bob's receipt is in: no delivery lands in the count below

	before := alice.c.StoreCommits()
	a := alice.queue(bob.user, "a")
	if n := alice.c.StoreCommits() - before; n != 1 {
		t.Fatalf("Queue took %d commits", n)
	}
	if it := outboxItem(t, alice, a); it.Payload == nil {
		t.Fatalf("not sealed when queued: %+v", it)
	}
	b := alice.queue(bob.user, "b")
	if it := outboxItem(t, alice, b); it.Payload == nil {
		t.Fatal("not sealed when queued behind a sealed item")
	}
	if got := client.OutboxState(outboxItem(t, alice, a)); got != "sending" {
		t.Fatalf("outbox state of the sealed item: %s", got)
	}
	if err := alice.c.Flush(ctx30(t), b); err != nil {
		t.Fatal(err)
	}
	bob.recv(alice.user+":a", alice.user+":b")
	if got := historyTexts(t, alice, bob.user); strings.Join(got, ",") != "first,a,b" {
		items, err := alice.c.Outbox()
		t.Logf("pending %v outbox %v", alice.c.Store().Pending(), err)
		for _, it := range items {
			t.Logf("item %s %q payload %v failed %q conv %q", it.ID, it.Text, it.Payload != nil, it.Failed, it.Conversation)
		}
		t.Logf("history again %q", historyTexts(t, alice, bob.user))
		t.Fatalf("alice's history %q", got)
	}
}

// TestIdleReceiverWritesPutOff: a receiver that gets nothing more commits
// what it put off (the printed messages' removal) about a second after
// the last batch, instead of keeping it until the next delivery.
func TestIdleReceiverWritesPutOff(t *testing.T) {
	alice, bob, printed := receivingWithoutReceipts(t)
	alice.send(bob.user, "hi")
	select {
	case <-printed:
	case <-time.After(10 * time.Second):
		t.Fatal("nothing printed")
	}
	deadline := time.Now().Add(5 * time.Second)
	for bob.c.Store().Pending() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if bob.c.Store().Pending() {
		t.Fatal("the removal of the printed message is still put off 5 s after the last delivery")
	}
}

// receivingWithoutReceipts sets up alice and bob, whose client sends no
// delivery receipts (their sending would commit what was put off) and runs
// Receive until the test ends; printed gets one value per message printed.
func receivingWithoutReceipts(t *testing.T) (alice, bob *dev, printed chan struct{}) {
	t.Helper()
	ts := client.NewTestServer(t, "a.example")
	alice = groupUsers(t, ts, "alice")[0]
	prof := t.TempDir()
	c, err := client.Open(client.Config{Profile: prof, Dial: ts.Dial(), Groups: mlsgroup.New(),
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, NoDeliveryReceipts: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	bob = &dev{t: t, c: c, user: ts.AddUser(t, "bob", groupPW), profile: prof}
	bob.login(groupPW)
	bob.drain()
	ctx, cancel := context.WithCancel(context.Background())
	printed = make(chan struct{}, 16)
	done := make(chan error, 1)
	go func() {
		done <- bob.c.Receive(ctx, 0, func(m store.Message) error {
			if m.Event == "" {
				printed <- struct{}{}
			}
			return nil
		})
	}()
	t.Cleanup(func() { cancel(); <-done }) // runs before c.Close (cleanups run last first)
	return alice, bob, printed
}

// deliveredTo waits until d's history of its conversation with peer shows
// its message text as delivered to peer: the receipt was processed.
func deliveredTo(t *testing.T, d *dev, peer, text string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h, err := d.c.History(peer, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range h {
			if m.Text == text && slices.Contains(m.DeliveredTo, peer) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %q not shown delivered to %s: %+v", d.user, text, peer, h)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRunningReceiveCommitsOncePerMessage: a running Receive commits once
// per delivered message (the batch: message, mailbox position), the
// printed entry's removal riding on the next one. The reads made on every
// batch (KeyPackages, parked and out-of-step conversations, the receipts
// timer) Peek, so they commit nothing of their own; as Views they
// committed each removal on its own, two commits per message.
func TestRunningReceiveCommitsOncePerMessage(t *testing.T) {
	const n = 6
	// One more than n: Receive commits what is put off on its own after
	// a second without deliveries, which a slow machine may reach once.
	if got := countPerMessage(t, n, (*client.Client).StoreCommits); got > n+1 {
		t.Errorf("bob committed %d times for %d messages, want one commit per message", got, n)
	}
}

// countPerMessage sets up alice and bob (bob receiving, without
// receipts), has alice send n messages after the first, each once the
// one before was printed, and returns how much count(bob) grew meanwhile.
func countPerMessage(t *testing.T, n int, count func(*client.Client) uint64) uint64 {
	t.Helper()
	alice, bob, printed := receivingWithoutReceipts(t)
	wait := func() {
		t.Helper()
		select {
		case <-printed:
		case <-time.After(10 * time.Second):
			t.Fatal("nothing printed")
		}
	}
	alice.send(bob.user, "first") // the conversation is set up
	wait()
	before := count(bob.c)
	for i := range n {
		alice.send(bob.user, fmt.Sprint("message ", i))
		wait()
	}
	return count(bob.c) - before
}

// TestRunningReceiveReads: a running Receive of a device that queues no
// receipt makes one read transaction per delivered message: the inbox to
// print, with the parked and out-of-step conversations to retry first
// (when none is, nothing more); the receipt flusher reads the outbox only
// when a receipt was queued since its last read, not after every batch.
func TestRunningReceiveReads(t *testing.T) {
	const n = 6
	// One more than n: a wake-up of the loop without a delivery (a
	// timer) may fall in the window on a slow machine.
	if got := countPerMessage(t, n, (*client.Client).StorePeeks); got > n+1 {
		t.Errorf("bob made %d read transactions for %d messages, want one per message", got, n)
	}
}
