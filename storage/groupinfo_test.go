package storage

import (
	"bytes"
	"context"
	"testing"
)

// TestGroupInfoMigrated: a schema-17 database with one conversation that
// has a GroupInfo and one that has none, opened by this code (migration
// 0018): each reads as it was (Conversation, ConversationsOfDevice), a
// Send's advance keeps the GroupInfo, a commit's replaces it, and one
// without a GroupInfo takes it away.
func TestGroupInfoMigrated(t *testing.T) {
	ctx := context.Background()
	raw, path := rawAtSchema(t, 17)
	gi := bytes.Repeat([]byte("gi"), 2100)
	if _, err := raw.ExecContext(ctx, `
		INSERT INTO users(id, name, pass_hash, created_ms) VALUES (1, 'u', 'h', 1);
		INSERT INTO devices(id, user_id, name, status, created_ms) VALUES ('a1', 1, 'd', 2, 1), ('b1', 1, 'd', 2, 1);
		INSERT INTO mailbox_state(device_id, head, acked) VALUES ('a1', 0, 0), ('b1', 0, 0);
		INSERT INTO conversations(id, kind, creator, epoch, group_info, last_seq, created_ms) VALUES
			('c@x', 1, 'u@x/a1', 2, ?1, 0, 1), ('d@x', 1, 'u@x/a1', 0, NULL, 0, 2);
		INSERT INTO conversation_members(conv_id, address, device_id, added_epoch) VALUES
			('c@x', 'u@x/a1', 'a1', 0), ('c@x', 'u@x/b1', 'b1', 0), ('d@x', 'u@x/a1', 'a1', 0), ('d@x', 'u@x/b1', 'b1', 0);`, gi); err != nil {
		t.Fatal(err)
	}
	db := openMigrated(t, raw, path)

	want := func(when, conv string, epoch, seq uint64, gi []byte) {
		t.Helper()
		var c *Conversation
		var all []*Conversation
		if err := db.Read(ctx, func(tx *Tx) (err error) {
			if c, err = tx.Conversation(conv); err != nil {
				return err
			}
			all, err = tx.ConversationsOfDevice("b1")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if c.Epoch != epoch || c.LastSeq != seq || !bytes.Equal(c.GroupInfo, gi) {
			t.Fatalf("%s: %s at epoch %d seq %d with %d bytes of GroupInfo; want %d, %d, %d bytes", when, conv, c.Epoch, c.LastSeq, len(c.GroupInfo), epoch, seq, len(gi))
		}
		for _, o := range all {
			if o.ID == conv && !bytes.Equal(o.GroupInfo, gi) {
				t.Fatalf("%s: %s listed with %d bytes of GroupInfo, want %d", when, conv, len(o.GroupInfo), len(gi))
			}
		}
	}
	want("migrated", "c@x", 2, 0, gi)
	want("migrated", "d@x", 0, 0, nil)
	mustWrite(t, db, func(tx *Tx) error { return sendLikeHub(tx, "c@x", "a1", "m1", []byte{1}, 10) })
	want("after a Send", "c@x", 2, 1, gi)
	next := []byte("next group info")
	mustWrite(t, db, func(tx *Tx) error { return tx.AdvanceConversation("c@x", 3, next, 2, true) })
	want("after a commit", "c@x", 3, 2, next)
	mustWrite(t, db, func(tx *Tx) error { return tx.AdvanceConversation("d@x", 1, next, 1, true) })
	want("after a first GroupInfo", "d@x", 1, 1, next)
	mustWrite(t, db, func(tx *Tx) error { return tx.AdvanceConversation("c@x", 4, nil, 3, true) })
	want("after a commit without GroupInfo", "c@x", 4, 3, nil)
	var left int
	if err := db.r.QueryRow(`SELECT COUNT(*) FROM conversation_group_info`).Scan(&left); err != nil || left != 1 {
		t.Fatalf("GroupInfo rows: %d, %v; want d@x's only", left, err)
	}
}
