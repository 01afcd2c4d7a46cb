package hub

import (
	"context"
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
