package homeserver

import (
	"errors"
	"testing"
	"time"

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

// TestDedupRecordKeptForTheWindow: a message's dedup record answers
// retries for a day after it was written, whatever the retention
// passes in between (Retention is shorter), and the first pass after the
// day deletes it.
func TestDedupRecordKeptForTheWindow(t *testing.T) {
	h := newHarness(t, Config{Retention: time.Hour})
	alice, _ := twoUsers(t, h)
	first := alice.must(appMsg(conv, "w1", 1, "hello")).GetSendOk()
	record := func() (*storage.SendRecord, error) {
		var r *storage.SendRecord
		err := h.db.Read(t.Context(), func(tx *storage.Tx) (err error) { r, err = tx.SendRecord(alice.addr(), "w1"); return err })
		return r, err
	}
	pass := func() {
		if _, err := h.s.RunRetention(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	pass()
	h.clock.Add(23 * time.Hour)
	pass()
	if r, err := record(); err != nil || r.ConvSeq != first.ConversationSeq || r.CreatedMs != first.ServerTimeMs {
		t.Fatalf("record after 23 h: %+v, %v; first answer %v", r, err, first)
	}
	h.clock.Add(2 * time.Hour)
	pass()
	if r, err := record(); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("record after 25 h: %+v, %v; want it deleted", r, err)
	}
}
