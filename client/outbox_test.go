package client_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"hearth/client"
	"hearth/client/store"
	"hearth/homeserver/wire"
)

// outboxItem returns a's outbox item id (failing if there is none).
func outboxItem(t *testing.T, d *dev, id string) store.OutboxItem {
	t.Helper()
	items, err := d.c.Outbox()
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.ID == id {
			return it
		}
	}
	t.Fatalf("%s outbox has no %s: %+v", d.user, id, items)
	return store.OutboxItem{}
}

// queue queues text to to on d.
func (d *dev) queue(to, text string) string {
	d.t.Helper()
	id, err := d.c.Queue(to, text)
	if err != nil {
		d.t.Fatal(err)
	}
	return id
}

// TestOutboxQueuesDoNotWaitForEachOther: a conversation whose item hangs,
// or fails retryably (its hub or the peer's server down), never holds back
// another conversation's message; the stuck item records its attempts and
// reason, Flush("") leaves it after a few tries instead of spinning, a
// Flush waiting for it ends with its context, and it goes once the cause
// is gone.
func TestOutboxQueuesDoNotWaitForEachOther(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "alice", "bob", "carol")
	alice, bob, carol := us[0], us[1], us[2]
	alice.send(bob.user, "hi")
	alice.send(carol.user, "hi")
	bob.recv(alice.user + ":hi")
	carol.recv(alice.user + ":hi")

	// Carol's item hangs until its Flush ends: bob's message goes anyway.
	alice.c.WrapSeal(func(ctx context.Context, it store.OutboxItem, next client.SealFunc) (store.OutboxItem, error) {
		if it.To == carol.user {
			<-ctx.Done()
			return it, ctx.Err()
		}
		return next(ctx, it)
	})
	stuck := alice.queue(carol.user, "stuck")
	if err := alice.c.Flush(ctx30(t), alice.queue(bob.user, "past a hanging one")); err != nil {
		t.Fatal(err)
	}
	bob.recv(alice.user + ":past a hanging one")

	// Carol's item fails retryably: bob's go, carol's is tried a few times
	// per Flush, records why, and is not spun on.
	var tries atomic.Int64
	alice.c.WrapSeal(func(ctx context.Context, it store.OutboxItem, next client.SealFunc) (store.OutboxItem, error) {
		if it.To == carol.user {
			tries.Add(1)
			return it, wire.Errorf("test", wire.Code_CODE_UNAVAILABLE, "carol's server is down")
		}
		return next(ctx, it)
	})
	if err := alice.c.Flush(ctx30(t), alice.queue(bob.user, "past a failing one")); err != nil {
		t.Fatal(err)
	}
	bob.recv(alice.user + ":past a failing one")
	if err := alice.c.Flush(ctx30(t), ""); err != nil {
		t.Fatalf("Flush of an outbox with a retryably failing item: %v", err)
	}
	it := outboxItem(t, alice, stuck)
	if it.Attempts == 0 || !strings.Contains(it.LastError, "carol's server is down") || client.OutboxState(it) != "queued" {
		t.Fatalf("stuck item %+v: want queued with attempts and the reason", it)
	}
	// A Flush waiting for it ends with its context, having tried at the
	// pace of the backoff (at least 10 ms apart here), not in a loop.
	before := tries.Load()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	err := alice.c.Flush(ctx, stuck)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush for a stuck item = %v, want its deadline", err)
	}
	if n := tries.Load() - before; n == 0 || n > 150 {
		t.Fatalf("%d tries within 1s of Flush: want some, at the backoff's pace", n)
	}

	alice.c.WrapSeal(func(ctx context.Context, it store.OutboxItem, next client.SealFunc) (store.OutboxItem, error) {
		return next(ctx, it)
	})
	if err := alice.c.Flush(ctx30(t), stuck); err != nil {
		t.Fatal(err)
	}
	carol.recv(alice.user + ":stuck")
}

// TestOutboxFailedItem: a message that can never be sent (unknown user, or
// refused for good while sealing) fails with the reason, is kept as failed
// and listed, holds back neither other conversations nor later messages of
// its own, is sent at the end of its conversation when retried, and can be
// dropped.
func TestOutboxFailedItem(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "alice", "bob", "carol")
	alice, bob, carol := us[0], us[1], us[2]
	alice.send(carol.user, "hi")
	carol.recv(alice.user + ":hi")

	nobody := alice.queue("nobody@a.example", "typo")
	err := alice.c.Flush(ctx30(t), nobody)
	if !errors.Is(err, client.ErrNotDelivered) || !wire.Is(err, wire.Code_CODE_NOT_FOUND) {
		t.Fatalf("send to an unknown user: %v", err)
	}
	if it := outboxItem(t, alice, nobody); client.OutboxState(it) != "failed" || it.Failed == "" {
		t.Fatalf("item to an unknown user %+v: want failed with the reason", it)
	}
	alice.send(bob.user, "fine")
	bob.recv(alice.user + ":fine")

	// In one Flush, carol's first item is refused while sealing; the
	// others (bob's, carol's next) are sent, each on its own.
	refuse := "first"
	alice.c.WrapSeal(func(ctx context.Context, it store.OutboxItem, next client.SealFunc) (store.OutboxItem, error) {
		if it.Text == refuse {
			return it, wire.Errorf("test", wire.Code_CODE_FORBIDDEN, "refused by policy")
		}
		return next(ctx, it)
	})
	first := alice.queue(carol.user, "first")
	alice.queue(bob.user, "to bob")
	second := alice.queue(carol.user, "second")
	if err := alice.c.Flush(ctx30(t), second); err != nil {
		t.Fatal(err)
	}
	if it := outboxItem(t, alice, first); client.OutboxState(it) != "failed" || !strings.Contains(it.Failed, "refused by policy") {
		t.Fatalf("refused item %+v", it)
	}
	bob.recv(alice.user + ":to bob")
	// Retried, it goes after what was queued behind it, under its id.
	refuse = ""
	if err := alice.c.RetryOutbox(first); err != nil {
		t.Fatal(err)
	}
	if err := alice.c.Flush(ctx30(t), first); err != nil {
		t.Fatal(err)
	}
	carol.recv(alice.user+":second", alice.user+":first")
	if ids := alice.historyIDs(carol.user); ids[len(ids)-1] != first {
		t.Fatalf("history ids %v, want %s last", ids, first)
	}

	// The unknown user's item: retried it fails again, dropped it is gone.
	if err := alice.c.RetryOutbox(nobody); err != nil {
		t.Fatal(err)
	}
	if err := alice.c.Flush(ctx30(t), nobody); !errors.Is(err, client.ErrNotDelivered) {
		t.Fatalf("retry to an unknown user: %v", err)
	}
	if err := alice.c.DropOutbox(nobody); err != nil {
		t.Fatal(err)
	}
	if items, _ := alice.c.Outbox(); len(items) != 0 {
		t.Fatalf("outbox after drop: %+v", items)
	}
	if err := alice.c.DropOutbox(nobody); !wire.Is(err, wire.Code_CODE_NOT_FOUND) {
		t.Fatalf("drop of an unknown id: %v", err)
	}
	if err := alice.c.RetryOutbox("nosuchid"); !wire.Is(err, wire.Code_CODE_NOT_FOUND) {
		t.Fatalf("retry of an unknown id: %v", err)
	}
}

// TestOutboxRemovedMember: a member removed from a group before its queued
// message went out learns it when it sends: the send fails as "no longer
// a member", the message is kept as failed, nothing spins, and the device
// goes on sending elsewhere.
func TestOutboxRemovedMember(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "ann", "ben", "cat")
	ann, ben, cat := us[0], us[1], us[2]
	gid, err := ann.c.Groups().Create(ctx30(t), "team", []string{ben.user, cat.user})
	if err != nil {
		t.Fatal(err)
	}
	ben.drain()
	cat.drain()
	id := cat.queue(gid, "sent after removal")
	if err := ann.c.Groups().RemoveMembers(ctx30(t), gid, []string{cat.user}); err != nil {
		t.Fatal(err)
	}
	err = cat.c.Flush(ctx30(t), id)
	if !errors.Is(err, client.ErrNotDelivered) || !wire.Is(err, wire.Code_CODE_NOT_MEMBER) || !strings.Contains(err.Error(), "no longer a member") {
		t.Fatalf("send by a removed member: %v", err)
	}
	if it := outboxItem(t, cat, id); client.OutboxState(it) != "failed" {
		t.Fatalf("item %+v, want failed", it)
	}
	// Nothing is left to try: a Flush starts nothing.
	before := cat.c.Launches()
	if err := cat.c.Flush(ctx30(t), ""); err != nil {
		t.Fatal(err)
	}
	if n := cat.c.Launches() - before; n != 0 {
		t.Fatalf("Flush started %d items with only a failed one queued", n)
	}
	if _, err := cat.c.Queue(gid, "again"); !wire.Is(err, wire.Code_CODE_NOT_MEMBER) {
		t.Fatalf("queue to a group cat was removed from: %v", err)
	}
	// The removal commit says who was removed (member_removed) and, on the
	// removed device itself, that it is no longer a member (removed).
	if ev := events(cat.drain()); len(ev) != 2 || ev[0] != "member_removed:"+cat.user || !strings.HasPrefix(ev[1], "removed:"+cat.user) {
		t.Fatalf("cat events %q", ev)
	}
	cat.send(ben.user, "still here")
	ben.drain()
	if h := ben.history(cat.user); len(h) == 0 || !strings.HasSuffix(h[len(h)-1], "still here") {
		t.Fatalf("ben history with cat %q", h)
	}
}

// TestReceiveEndsOnCancel: Receive following (quiet 0) with a stuck item
// in the outbox ends when its context does.
func TestReceiveEndsOnCancel(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "alice")
	alice := us[0]
	alice.queue("nobody@a.example", "never")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- alice.c.Receive(ctx, 0, func(store.Message) error { return nil }) }()
	time.AfterFunc(200*time.Millisecond, cancel)
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Receive = %v, want canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Receive did not end on cancel")
	}
}
