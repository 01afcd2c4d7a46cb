package hub

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/storage"
)

// TestApplyDeliverAfterHubRestore: a follower applies DELIVERs in order,
// waits on a gap, ignores a replay, and applies a DELIVER from a hub
// restored from a backup, which names as previous a message before the
// last one applied here and is numbered past the restore gap.
func TestApplyDeliverAfterHubRestore(t *testing.T) {
	db, err := storage.Open(filepath.Join(t.TempDir(), "f.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h := New(Config{Domain: "b.example"})
	conv, err := identity.ParseConversation("0dc7c9fa0e9f9cfdd352@a.example")
	if err != nil {
		t.Fatal(err)
	}
	apply := func(seq, prev uint64) error {
		return db.Write(context.Background(), func(tx *storage.Tx) error {
			_, err := h.ApplyDeliver("test", tx, &Delivered{Conv: conv, Sender: "ann@a.example/A1", MessageID: "m", Kind: wire.MessageKind_MESSAGE_KIND_APPLICATION,
				Payload: []byte("ciphertext"), Seq: seq, PrevSeq: prev, CreatedMs: 1}, 1)
			return err
		})
	}
	last := func() uint64 {
		var c *storage.Conversation
		if err := db.Read(context.Background(), func(tx *storage.Tx) (err error) { c, err = tx.Conversation(conv.String()); return err }); err != nil {
			t.Fatal(err)
		}
		return c.LastSeq
	}
	for _, s := range [][2]uint64{{1, 0}, {2, 1}, {3, 2}} {
		if err := apply(s[0], s[1]); err != nil {
			t.Fatalf("apply %v: %v", s, err)
		}
	}
	if err := apply(5, 4); wire.KindOf(err) != wire.Code_CODE_UNAVAILABLE {
		t.Fatalf("a DELIVER after a gap: %v, want CODE_UNAVAILABLE", err)
	}
	if err := apply(2, 1); err != nil || last() != 3 {
		t.Fatalf("replay: %v, last %d", err, last())
	}
	// The hub was restored from a backup taken after seq 1: it last sent
	// seq 1 here and numbers its next message past the gap.
	next := uint64(1 + storage.RestoreGap + 1)
	if err := apply(next, 1); err != nil {
		t.Fatalf("DELIVER of a restored hub: %v", err)
	}
	if got := last(); got != next {
		t.Fatalf("last seq %d, want %d", got, next)
	}
	if err := apply(next+1, next); err != nil {
		t.Fatal(err)
	}
}

// TestApplyDeliverAfterFollowerRestore: a follower restored from a backup
// lost the DELIVERs applied after it; the hub's next one names a message
// it never saw. That one gap is accepted once; a later gap waits again.
func TestApplyDeliverAfterFollowerRestore(t *testing.T) {
	db, err := storage.Open(filepath.Join(t.TempDir(), "f.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h := New(Config{Domain: "b.example"})
	conv, _ := identity.ParseConversation("0dc7c9fa0e9f9cfdd352@a.example")
	local, _ := identity.ParseConversation("1dc7c9fa0e9f9cfdd352@b.example")
	apply := func(c identity.ConversationID, seq, prev uint64) error {
		return db.Write(context.Background(), func(tx *storage.Tx) error {
			_, err := h.ApplyDeliver("test", tx, &Delivered{Conv: c, Sender: "ann@a.example/A1", MessageID: "m", Kind: wire.MessageKind_MESSAGE_KIND_APPLICATION,
				Payload: []byte("ciphertext"), Seq: seq, PrevSeq: prev, CreatedMs: 1}, 1)
			return err
		})
	}
	for _, c := range []identity.ConversationID{conv, local} {
		if err := apply(c, 1, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Write(context.Background(), func(tx *storage.Tx) error { return tx.SkipRestoredSequences("b.example", storage.RestoreGap) }); err != nil {
		t.Fatal(err)
	}
	// Before the restore the follower had applied 2..4; the hub goes on at 5.
	if err := apply(conv, 5, 4); err != nil {
		t.Fatalf("first DELIVER after the restore: %v", err)
	}
	if err := apply(conv, 7, 6); wire.KindOf(err) != wire.Code_CODE_UNAVAILABLE {
		t.Fatalf("a later gap: %v, want CODE_UNAVAILABLE", err)
	}
	if err := apply(conv, 6, 5); err != nil {
		t.Fatal(err)
	}
	// A conversation hubbed here gets no mark: its sequences moved past the gap.
	if err := db.Read(context.Background(), func(tx *storage.Tx) error {
		_, err := tx.RestoredFollowerSeq(local.String())
		return err
	}); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("mark on a conversation hubbed here: %v", err)
	}
}

// TestFollowerKeepsLatestGroupInfo: a follower's copy of a conversation
// holds the GroupInfo of the last commit the hub delivered (what a device
// of its users that fell out of step rejoins from, through GetConversation
// answered here); application messages leave it, and a commit without one
// clears it rather than leave a stale one.
func TestFollowerKeepsLatestGroupInfo(t *testing.T) {
	db, err := storage.Open(filepath.Join(t.TempDir(), "f.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h := New(Config{Domain: "b.example"})
	conv, err := identity.ParseConversation("0dc7c9fa0e9f9cfdd352@a.example")
	if err != nil {
		t.Fatal(err)
	}
	apply := func(seq uint64, kind wire.MessageKind, gi string) {
		t.Helper()
		err := db.Write(context.Background(), func(tx *storage.Tx) error {
			_, err := h.ApplyDeliver("test", tx, &Delivered{Conv: conv, Sender: "ann@a.example/A1", MessageID: fmt.Sprint("m", seq), Kind: kind,
				Epoch: seq, Payload: []byte("ciphertext"), GroupInfo: []byte(gi), Seq: seq, PrevSeq: seq - 1, CreatedMs: 1}, 1)
			return err
		})
		if err != nil {
			t.Fatalf("apply %d: %v", seq, err)
		}
	}
	groupInfo := func() string {
		t.Helper()
		var c *storage.Conversation
		if err := db.Read(context.Background(), func(tx *storage.Tx) (err error) { c, err = tx.Conversation(conv.String()); return err }); err != nil {
			t.Fatal(err)
		}
		return string(c.GroupInfo)
	}
	commit, app := wire.MessageKind_MESSAGE_KIND_COMMIT, wire.MessageKind_MESSAGE_KIND_APPLICATION
	apply(1, commit, "gi-1")
	if got := groupInfo(); got != "gi-1" {
		t.Fatalf("after a commit: GroupInfo %q, want gi-1", got)
	}
	apply(2, app, "")
	apply(3, commit, "gi-3")
	if got := groupInfo(); got != "gi-3" {
		t.Fatalf("after a second commit: GroupInfo %q, want gi-3", got)
	}
	apply(4, app, "")
	if got := groupInfo(); got != "gi-3" {
		t.Fatalf("an application message changed the GroupInfo to %q", got)
	}
	apply(5, commit, "")
	if got := groupInfo(); got != "" {
		t.Fatalf("a commit without GroupInfo left %q", got)
	}
}
