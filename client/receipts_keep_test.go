package client_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"hearth/client"
	"hearth/client/store"
	"hearth/homeserver/wire"
)

// bodyItems returns d's outbox items that carry a receipt or settings.
func bodyItems(t *testing.T, d *dev) []store.OutboxItem {
	t.Helper()
	items, err := d.c.Outbox()
	if err != nil {
		t.Fatal(err)
	}
	var out []store.OutboxItem
	for _, it := range items {
		if it.Body != nil {
			out = append(out, it)
		}
	}
	return out
}

// statusOf returns the receipt status of the message d sent with text to
// peer, as d's history shows it.
func statusOf(t *testing.T, d *dev, peer, text string) string {
	t.Helper()
	h, err := d.c.History(peer, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range h {
		if m.Text == text && m.From == d.user {
			return m.Status
		}
	}
	t.Fatalf("%s's history with %s has no %q", d.user, peer, text)
	return ""
}

// TestReceiptKeptUntilSent: a receipt that cannot be encrypted for a
// reason that may pass (here: its conversation's rejoin failed once) is
// not dropped. It stays in the outbox, shown queued with the reason;
// it holds back neither the next message of its conversation nor a newer
// receipt, which replaces it; every later Flush tries it again, and it is
// sent once the cause is gone. Only a receipt that can never be sent from
// this device (it is no longer a member) is dropped.
func TestReceiptKeptUntilSent(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "alice", "bob")
	alice, bob := us[0], us[1]
	alice.send(bob.user, "hi")

	var refused atomic.Int64
	failWith := func(err error) {
		bob.c.WrapSeal(func(ctx context.Context, it store.OutboxItem, next client.SealFunc) (store.OutboxItem, error) {
			if it.Body != nil && err != nil {
				refused.Add(1)
				return it, err
			}
			return next(ctx, it)
		})
	}
	failWith(wire.Errorf("client.Heal", wire.Code_CODE_FORBIDDEN, "rejoining conversation (out of step: test) failed: the hub has no GroupInfo"))
	bob.recv(alice.user + ":hi") // queues the delivery receipt and tries to send it
	if refused.Load() == 0 {
		t.Fatal("bob's delivery receipt was not tried")
	}
	kept := bodyItems(t, bob)
	if len(kept) != 1 || client.OutboxState(kept[0]) != "queued" || !strings.Contains(kept[0].LastError, "no GroupInfo") || kept[0].Attempts == 0 {
		t.Fatalf("bob's outbox after a failed receipt: %+v, want one queued receipt with the reason", kept)
	}

	// A read replaces the kept delivery receipt; waiting for it ends with
	// ErrSendLater, and the receipt is still there.
	mark, err := bob.c.MarkRead(alice.user, "")
	if err != nil || mark.ReceiptID == "" {
		t.Fatalf("MarkRead: %+v, %v", mark, err)
	}
	if err := bob.c.Flush(ctx30(t), mark.ReceiptID); !errors.Is(err, client.ErrSendLater) {
		t.Fatalf("Flush of a receipt that cannot be sent now = %v, want ErrSendLater", err)
	}
	if kept := bodyItems(t, bob); len(kept) != 1 || kept[0].ID != mark.ReceiptID {
		t.Fatalf("bob's outbox after the read: %+v, want only the read receipt %s", kept, mark.ReceiptID)
	}
	// The kept receipt does not hold back bob's next message.
	bob.send(alice.user, "reply")
	alice.recv(bob.user + ":reply")
	if st := statusOf(t, alice, bob.user, "hi"); st != "sent" {
		t.Fatalf("alice's message shows %q before bob's receipt was sent", st)
	}

	// The cause is gone: the next Flush sends it.
	failWith(nil)
	if err := bob.c.Flush(ctx30(t), ""); err != nil {
		t.Fatal(err)
	}
	if kept := bodyItems(t, bob); len(kept) != 0 {
		t.Fatalf("bob's outbox after the cause passed: %+v", kept)
	}
	alice.recv()
	if st := statusOf(t, alice, bob.user, "hi"); st != "read" {
		t.Fatalf("alice's message shows %q, want read", st)
	}

	// A receipt that can never be sent from this device is dropped.
	alice.send(bob.user, "again")
	failWith(wire.Errorf("client.Group", wire.Code_CODE_NOT_MEMBER, "you are no longer a member"))
	bob.recv(alice.user + ":again")
	if kept := bodyItems(t, bob); len(kept) != 0 {
		t.Fatalf("bob's outbox after a receipt refused for good: %+v, want it dropped", kept)
	}
}
