package homeserver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hearth/keys/testutil"
	"hearth/storage"
)

// snapshot copies n's live database as `hearth admin backup` does.
func (n *fedNode) snapshot() string {
	n.t.Helper()
	p := filepath.Join(n.t.TempDir(), "snapshot.db")
	if _, err := n.db.Snapshot(context.Background(), p, nil); err != nil {
		n.t.Fatal(err)
	}
	return p
}

// restoreFrom stops n, replaces its database with the snapshot, prepares
// it as `hearth restore` does, and starts n again on the same address.
func (n *fedNode) restoreFrom(snap string) {
	n.t.Helper()
	n.stop()
	live := filepath.Join(n.dir, "hearth.db")
	for _, sfx := range []string{"", "-wal", "-shm"} {
		os.Remove(live + sfx)
	}
	if err := os.Rename(snap, live); err != nil {
		n.t.Fatal(err)
	}
	db, err := storage.Open(live, storage.Options{})
	if err != nil {
		n.t.Fatal(err)
	}
	err = db.Write(context.Background(), func(tx *storage.Tx) error {
		if err := tx.SkipRestoredSequences(n.domain, storage.RestoreGap); err != nil {
			return err
		}
		return tx.DropSingleUseKeyPackages()
	})
	db.Close()
	if err != nil {
		n.t.Fatal(err)
	}
	n.start()
}

// TestFederationRestore: a hub restored from a backup goes on delivering
// to a follower that applied messages the backup does not hold (new
// sequences past the gap, so new envelope ids, and a predecessor behind
// the follower's); then the follower is restored from a backup and the
// hub's next message, which names one the follower lost, reaches its
// device, which receives nothing twice.
func TestFederationRestore(t *testing.T) {
	a, b := newFedNode(t, "a.example"), newFedNode(t, "b.example")
	pinAll(t, a, b)
	_, alice := a.addUser("alice")
	_, bob := b.addUser("bob")
	alice.must(syncFrame(0))
	bob.must(syncFrame(0))
	conv := "ab@a.example"
	createFedConv(alice, conv)
	alice.must(addCommit(conv, "add", 0, bob.addr()))
	collect(t, bob, 1, fedWait) // the welcome
	alice.must(appMsg(conv, "m1", 1, "one"))
	collect(t, bob, 1, fedWait)

	snapA := a.snapshot()
	alice.must(appMsg(conv, "m2", 1, "two"))
	alice.must(appMsg(conv, "m3", 1, "three"))
	collect(t, bob, 2, fedWait)
	a.restoreFrom(snapA)
	alice = a.resume(alice, 0)
	ok := alice.must(appMsg(conv, "m4", 1, "four")).GetSendOk()
	if ok.GetConversationSeq() != 2+storage.RestoreGap+1 {
		t.Fatalf("first message after the hub's restore has seq %d", ok.GetConversationSeq())
	}
	if d := collect(t, bob, 1, fedWait)[0]; string(d.Payload) != "four" || d.ConversationSeq != ok.ConversationSeq {
		t.Fatalf("bob got %v after the hub's restore", d)
	}

	snapB := b.snapshot()
	alice.must(appMsg(conv, "m5", 1, "five"))
	last := collect(t, bob, 1, fedWait)[0]
	// The hub has its answer for m5 (else it sends m5 again, and the
	// restored server, which lost it, applies it again: see
	// docs/operations.md).
	waitQueueEmpty(t, a, b.domain)
	b.restoreFrom(snapB)
	bob = b.resume(bob, last.Seq) // the device resumes after what it processed
	alice.must(appMsg(conv, "m6", 1, "six"))
	if d := collect(t, bob, 1, fedWait)[0]; string(d.Payload) != "six" {
		t.Fatalf("bob got %v after his server's restore, want six", d)
	}
	if !strings.Contains(b.logs.String(), "restored follower") {
		t.Errorf("the follower did not log the skipped messages:\n%s", b.logs.String())
	}
}

// waitQueueEmpty waits until n has nothing queued for peer.
func waitQueueEmpty(t *testing.T, n *fedNode, peer string) {
	t.Helper()
	testutil.WaitFor(t, fedWait, func() error {
		fi, err := n.s.FederationList(context.Background())
		if err != nil {
			return err
		}
		for _, p := range fi.Peers {
			if p.Domain == peer && p.QueueDepth > 0 {
				return fmt.Errorf("%d envelopes queued for %s", p.QueueDepth, peer)
			}
		}
		return nil
	})
}
