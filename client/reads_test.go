package client_test

import (
	"slices"
	"testing"

	"hearth/client"
)

// TestSendReads: a message queued and flushed on a connected device, in
// a conversation in step, costs one commit and at most two read
// transactions: the Flush's checks (KeyPackages, rosters, parked
// conversations, leave requests: one read, as the session is caught up)
// and the send loop's read of the outbox heads (with the kept receipts
// to retry); the account and the signature key come from memory. A read
// transaction is cheap but not free (a few microseconds of bookkeeping
// and allocation).
func TestSendReads(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "alice", "bob")
	alice, bob := us[0], us[1]
	alice.send(bob.user, "first")
	bob.recv(alice.user + ":first")
	deliveredTo(t, alice, bob.user, "first") // bob's receipt is in

	commits, peeks := alice.c.StoreCommits(), alice.c.StorePeeks()
	alice.send(bob.user, "second")
	if n := alice.c.StoreCommits() - commits; n != 1 {
		t.Errorf("queue and send took %d commits, want 1", n)
	}
	if n := alice.c.StorePeeks() - peeks; n > 2 {
		t.Errorf("queue and send took %d read transactions, want at most 2", n)
	}
	bob.recv(alice.user + ":second")
}

// TestBurstSealedWhenQueued: messages queued one after the other on a
// connected device, before any is sent, are each encrypted in the
// transaction that queues it (the one before it in its queue is sealed),
// so a burst costs one commit per message, not two; Flush sends them in
// their order and bob reads them in it.
func TestBurstSealedWhenQueued(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "alice", "bob")
	alice, bob := us[0], us[1]
	alice.send(bob.user, "first")
	bob.recv(alice.user + ":first")
	deliveredTo(t, alice, bob.user, "first") // bob's receipt is in

	commits := alice.c.StoreCommits()
	texts := []string{"one", "two", "three"}
	for _, text := range texts {
		if _, err := alice.c.Queue(bob.user, text); err != nil {
			t.Fatal(err)
		}
	}
	if n := alice.c.StoreCommits() - commits; n != 3 {
		t.Errorf("three Queues took %d commits, want 3", n)
	}
	items, err := alice.c.Outbox()
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 {
		t.Fatalf("outbox %+v, want the three messages", items)
	}
	for i, it := range items {
		if it.Text != texts[i] || it.Payload == nil {
			t.Errorf("outbox item %d: %q sealed %v, want %q sealed", i, it.Text, it.Payload != nil, texts[i])
		}
	}
	if err := alice.c.Flush(ctx30(t), ""); err != nil {
		t.Fatal(err)
	}
	bob.recv(alice.user+":one", alice.user+":two", alice.user+":three")
}

// TestBurstSealedThenStale: a burst sealed when queued, all for an epoch
// that commits of another admin then leave behind by more than the hub's
// window (EpochWindow, 2) before any is sent: the hub refuses each as
// stale in its turn, each is encrypted again, and every member, those
// added meanwhile included, reads the burst once, in its order.
func TestBurstSealedThenStale(t *testing.T) {
	if testing.Short() {
		t.Skip("over 2 s: not in the -short loop")
	}
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "alice", "bob", "cat", "dan", "eve", "fay")
	alice, bob, cat := us[0], us[1], us[2]
	gid, err := alice.c.Groups().Create(ctx30(t), "g", []string{bob.user, cat.user})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.c.Groups().Promote(ctx30(t), gid, bob.user); err != nil {
		t.Fatal(err)
	}
	alice.send(gid, "hello")
	bob.drain()
	cat.drain()
	alice.drain()

	texts := []string{"one", "two", "three"}
	for _, text := range texts {
		if _, err := alice.c.Queue(gid, text); err != nil {
			t.Fatal(err)
		}
	}
	items, err := alice.c.Outbox()
	if err != nil {
		t.Fatal(err)
	}
	for i, it := range items {
		if it.Payload == nil {
			t.Fatalf("outbox item %d (%q) not sealed when queued", i, it.Text)
		}
	}
	for _, d := range us[3:] { // three commits
		if err := bob.c.Groups().AddMembers(ctx30(t), gid, []string{d.user}); err != nil {
			t.Fatal(err)
		}
	}
	launches := alice.c.Launches()
	if err := alice.c.Flush(ctx30(t), ""); err != nil {
		t.Fatal(err)
	}
	if n := alice.c.Launches() - launches; n != 2*len(texts) {
		t.Errorf("%d sends, want %d: each refused as stale once, then sent", n, 2*len(texts))
	}
	for _, d := range us[1:] {
		var got []string
		for _, m := range d.drain() {
			if m.Event == "" {
				got = append(got, m.Text)
			}
		}
		if !slices.Equal(got, texts) {
			t.Errorf("%s read %q, want %q", d.user, got, texts)
		}
	}
}

// TestKeyPackagesCheckedOnce: Flush checks that the device has enough
// KeyPackages published before it sends; once it found enough it does
// not count them again until one is used (or withdrawn), and when Welcomes
// used most of them the next Flush publishes a new batch.
func TestKeyPackagesCheckedOnce(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "alice", "bob")
	alice, bob := us[0], us[1]
	alice.send(bob.user, "first")
	bob.recv(alice.user + ":first")

	// A reopen of alice's file (closed after IdleRelease without a
	// transaction, on a slow machine) rightly forgets the note: each
	// allows one more count.
	reopens := func(since int) int64 { return int64(alice.c.StoreOpens() - since) }
	left, checks, opens := alice.c.KeyPackagesLeft(t), alice.c.KeyPackageChecks(), alice.c.StoreOpens()
	if left < 5 {
		t.Fatalf("%d KeyPackages left after set-up, want at least 5", left)
	}
	for _, text := range []string{"two", "three", "four"} {
		alice.send(bob.user, text)
	}
	bob.recv(alice.user+":two", alice.user+":three", alice.user+":four")
	if n, r := alice.c.KeyPackageChecks()-checks, reopens(opens); n > r {
		t.Errorf("three sends with enough KeyPackages counted them %d times, want 0 (%d reopens)", n, r)
	}

	alice.c.UseKeyPackages(t, left-4) // 4 left: below the low mark (5)
	checks, opens = alice.c.KeyPackageChecks(), alice.c.StoreOpens()
	alice.send(bob.user, "five")
	bob.recv(alice.user + ":five")
	if n, r := alice.c.KeyPackageChecks()-checks, reopens(opens); n < 1 || n > 1+r {
		t.Errorf("the send after KeyPackages were used counted them %d times, want 1 (%d reopens)", n, r)
	}
	if got := alice.c.KeyPackagesLeft(t); got <= 4 {
		t.Errorf("%d KeyPackages left after the send, want a new batch published", got)
	}
	checks, opens = alice.c.KeyPackageChecks(), alice.c.StoreOpens()
	alice.send(bob.user, "six")
	bob.recv(alice.user + ":six")
	if n, r := alice.c.KeyPackageChecks()-checks, reopens(opens); n > 1+r {
		t.Errorf("the second send after the new batch counted the KeyPackages %d times, want at most 1 (%d reopens)", n, r)
	}
}
