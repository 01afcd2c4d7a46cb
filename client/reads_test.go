package client_test

import (
	"testing"

	"hearth/client"
)

// TestSendReads: a message queued and flushed on a connected device, in
// a conversation in step, costs one commit and at most four read
// transactions: the Flush's checks before and after catching up (one
// each), the send loop's read of the outbox heads, and the retry of kept
// receipts; the account and the signature key come from memory. A read
// transaction is cheap but not free (a few microseconds of bookkeeping
// and allocation), and every message sent made eight before.
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
	if n := alice.c.StorePeeks() - peeks; n > 4 {
		t.Errorf("queue and send took %d read transactions, want at most 4", n)
	}
	bob.recv(alice.user + ":second")
}
