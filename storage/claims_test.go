package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// sendOrDup is hub.Accept's path for a message: claim the dedup record,
// or answer from the one there; log, fan out, advance. got is the record
// the Send is answered with.
func sendOrDup(tx *Tx, conv, dev, id string, got **SendRecord) error {
	sender := "u@x/" + dev
	v, err := tx.ConversationForSend(conv, sender, dev, false)
	if err != nil {
		return err
	}
	seq := v.Conv.LastSeq + 1
	rec := &SendRecord{Sender: sender, MessageID: id, ConvID: conv, ConvSeq: seq, Epoch: v.Conv.Epoch, CreatedMs: int64(seq)}
	ok, err := tx.ClaimSendRecord(rec)
	if err != nil {
		return err
	}
	if !ok {
		*got, err = tx.SendRecord(sender, id)
		return err
	}
	if err := tx.QueueLog(&LogEntry{ConvID: conv, Seq: seq, Sender: sender, MessageID: id, Kind: 1, Epoch: v.Conv.Epoch,
		Payload: []byte(id), CreatedMs: int64(seq), Refs: len(v.Recipients)}); err != nil {
		return err
	}
	if _, err := tx.FanOutTo(conv, seq, dev, v.Recipients, int64(seq)); err != nil {
		return err
	}
	*got = rec
	return tx.AdvanceConversation(conv, v.Conv.Epoch, nil, seq, false)
}

// entriesOf is dev's mailbox as "seq:message" words.
func entriesOf(t *testing.T, db *DB, dev string) string {
	t.Helper()
	var got []string
	err := db.Read(context.Background(), func(tx *Tx) error {
		es, err := tx.Entries(dev, 0, 100)
		for _, e := range es {
			got = append(got, fmt.Sprint(e.Seq, ":", e.MessageID))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(got, " ")
}

// TestClaimsInOneTransaction: the dedup claims of Sends in one writer
// transaction: a retry of a message claimed earlier in the same
// transaction, or committed before, is answered with the first's record;
// a request that rolls back leaves no claim (also after a statement that
// inserted the rows waiting), and the claims of the requests before it
// stay.
func TestClaimsInOneTransaction(t *testing.T) {
	db, _ := openTest(t)
	ids := fixture(t, db, "c", 2)
	sender := "u@x/" + ids[0]
	recs := make([]*SendRecord, 9)
	send := func(i int, id string) func(*Tx) error {
		return func(tx *Tx) error { return sendOrDup(tx, "c@x", ids[0], id, &recs[i]) }
	}
	refused := errors.New("refused")
	var before *SendRecord
	mustWrite(t, db, func(tx *Tx) error { return sendOrDup(tx, "c@x", ids[0], "old", &before) })
	errs := oneBatch(t, db,
		send(0, "m1"),
		send(1, "m1"), // a retry while the first is in the same transaction
		func(tx *Tx) error { // claimed, then refused
			if err := send(2, "m2")(tx); err != nil {
				return err
			}
			return refused
		},
		send(3, "m2"), // the same message again: not a duplicate of the refused one
		send(4, "old"),
		func(tx *Tx) error { // claimed, the rows waiting inserted (Entries), refused
			if err := send(5, "m3")(tx); err != nil {
				return err
			}
			if _, err := tx.Entries(ids[1], 0, 10); err != nil {
				return err
			}
			return refused
		},
		send(6, "m3"),
		send(7, "m1"), // after a statement that inserted the rows waiting
		send(8, "m4"),
	)
	for i, err := range errs {
		if (i == 2 || i == 5) != errors.Is(err, refused) || (err != nil && !errors.Is(err, refused)) {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if *recs[1] != *recs[0] || *recs[7] != *recs[0] || recs[0].ConvSeq != 2 {
		t.Errorf("m1 answered %+v, %+v, %+v", recs[0], recs[1], recs[7])
	}
	if *recs[4] != *before {
		t.Errorf("old answered %+v, want %+v", recs[4], before)
	}
	if recs[3].ConvSeq != 3 || recs[6].ConvSeq != 4 || recs[8].ConvSeq != 5 {
		t.Errorf("m2 at %d, m3 at %d, m4 at %d, want 3, 4, 5", recs[3].ConvSeq, recs[6].ConvSeq, recs[8].ConvSeq)
	}
	for _, r := range []*SendRecord{before, recs[0], recs[3], recs[6], recs[8]} {
		var got *SendRecord
		if err := db.Read(context.Background(), func(tx *Tx) (err error) { got, err = tx.SendRecord(sender, r.MessageID); return err }); err != nil || *got != *r {
			t.Errorf("stored %s: %+v (%v), want %+v", r.MessageID, got, err, r)
		}
	}
	if got := entriesOf(t, db, ids[1]); got != "1:old 2:m1 3:m2 4:m3 5:m4" {
		t.Errorf("entries %s", got)
	}
	checkRefs(t, db)
}
