package homeserver

import (
	"errors"
	"testing"

	"hearth/homeserver/wire"
	"hearth/storage"
)

// TestRefusedSendLeavesNoDedupRecord: the hub claims a message's dedup
// record in the statement that checks for it (storage.ClaimSendRecord),
// before it judges the message; a refusal must roll the claim back, so
// that the same message id sent again correctly is accepted as new, not
// answered as a duplicate of nothing.
func TestRefusedSendLeavesNoDedupRecord(t *testing.T) {
	h := newHarness(t, Config{})
	alice, bob := twoUsers(t, h)
	alice.fails(appMsg(conv, "m1", 99, "from a future epoch"), wire.Code_CODE_STALE_EPOCH)
	if err := h.db.Read(t.Context(), func(tx *storage.Tx) error {
		_, err := tx.SendRecord(alice.addr(), "m1")
		return err
	}); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("dedup record after a refusal: err %v, want not found", err)
	}
	ok := alice.must(appMsg(conv, "m1", 1, "hello")).GetSendOk()
	if ok.Duplicate {
		t.Fatalf("the corrected message was answered as a duplicate: %v", ok)
	}
	again := alice.must(appMsg(conv, "m1", 1, "hello")).GetSendOk()
	if !again.Duplicate || again.ConversationSeq != ok.ConversationSeq {
		t.Fatalf("retry: %v, first %v", again, ok)
	}
	bob.must(syncFrame(1)) // after the welcome
	if ds := bob.deliveries(1); string(ds[0].Payload) != "hello" {
		t.Fatalf("delivered %q", ds[0].Payload)
	}
	bob.noDelivery()
}
