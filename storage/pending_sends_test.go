package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// keyedBatch runs each fn as a Send submitted with its key (SubmitSend;
// key "" submits it plainly) in one writer transaction, behind a request
// that holds the writer until all are queued, and returns their errors.
func keyedBatch(t *testing.T, db *DB, sender string, keys []string, fns ...func(*Tx) error) []error {
	t.Helper()
	ctx := context.Background()
	release := make(chan struct{})
	blocker := db.Submit(ctx, func(*Tx) error { <-release; return nil })
	time.Sleep(20 * time.Millisecond)
	waits := make([]func() error, len(fns))
	for i, fn := range fns {
		if keys[i] == "" {
			waits[i] = db.Submit(ctx, fn)
		} else {
			waits[i] = db.SubmitSend(ctx, sender, keys[i], fn)
		}
	}
	close(release)
	if err := blocker(); err != nil {
		t.Fatal(err)
	}
	errs := make([]error, len(fns))
	for i, w := range waits {
		errs[i] = w()
	}
	return errs
}

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

// TestClaimsInOneTransaction: the dedup claims of Sends handed to the
// writer with their keys, in one transaction: a retry of a message
// claimed earlier in the same transaction, or committed before, is
// answered with the first's record; a request that rolls back leaves no
// claim (also when its own flush had inserted it), and the claims of the
// requests before it still go in.
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
	noErrors(t, keyedBatch(t, db, sender, []string{"old"}, func(tx *Tx) error { return sendOrDup(tx, "c@x", ids[0], "old", &before) }))
	errs := keyedBatch(t, db, sender, []string{"m1", "m1", "m2", "m2", "old", "m3", "m3", "m1", "m4"},
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
		func(tx *Tx) error { // claimed, inserted with m1's and m2's by a flush, refused
			if err := send(5, "m3")(tx); err != nil {
				return err
			}
			if _, err := tx.Entries(ids[1], 0, 10); err != nil {
				return err
			}
			return refused
		},
		send(6, "m3"),
		send(7, "m1"), // after the lookup ended (Entries): from the claims
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

// TestClaimsCostNoStatement: Sends handed over with their keys cost the
// writer no dedup statement of their own: one lookup and one insert per
// transaction; and the heads of the transaction move in one statement.
func TestClaimsCostNoStatement(t *testing.T) {
	db, _ := openTest(t)
	ids := fixture(t, db, "c", 2)
	sender := "u@x/" + ids[0]
	var r *SendRecord
	send := func(id string) func(*Tx) error {
		return func(tx *Tx) error { return sendOrDup(tx, "c@x", ids[0], id, &r) }
	}
	noErrors(t, keyedBatch(t, db, sender, []string{"m0"}, send("m0"))) // reads the conversation into the views
	s0 := db.WriteStatements()
	noErrors(t, keyedBatch(t, db, sender, []string{"m1", "m2", "m3", "m4", "m5"}, send("m1"), send("m2"), send("m3"), send("m4"), send("m5")))
	// The blocker's savepoint and release; the lookup (one statement for
	// five keys, padded to eight); per Send its savepoint and release; the
	// log entries, the mailbox rows, the advance, the dedup records and
	// the head: one statement each.
	if n := db.WriteStatements() - s0; n != 2+1+5*2+5 {
		t.Errorf("five Sends ran %d statements, want 18", n)
	}
	if got := entriesOf(t, db, ids[1]); got != "1:m0 2:m1 3:m2 4:m3 5:m4 6:m5" {
		t.Errorf("entries %s", got)
	}
}

// TestStaleHeadsRunAgain: a head moved behind the writer's back (as a
// stale view would have it: here a statement that bypasses the writer's
// bookkeeping) fails the transaction's head move; the writer rolls it
// back and runs its Sends again, which read the heads anew: nothing lost,
// no sequence given twice, and the request that cannot run again gets
// the error.
func TestStaleHeadsRunAgain(t *testing.T) {
	db, _ := openTest(t)
	ids := fixture(t, db, "c", 2)
	sender := "u@x/" + ids[0]
	var r1, r2 *SendRecord
	b0, _ := db.WriteStats()
	errs := keyedBatch(t, db, sender, []string{"m1", "", "m2"},
		func(tx *Tx) error { return sendOrDup(tx, "c@x", ids[0], "m1", &r1) },
		func(tx *Tx) error {
			_, err := tx.tx.ExecContext(tx.ctx, `UPDATE mailbox_state SET head = head + 1 WHERE device_id = ?`, ids[1])
			return err
		},
		func(tx *Tx) error { return sendOrDup(tx, "c@x", ids[0], "m2", &r2) },
	)
	if errs[0] != nil || errs[2] != nil || !errors.Is(errs[1], ErrStaleHeads) {
		t.Fatalf("errors %v, want the middle request's to be ErrStaleHeads and no other", errs)
	}
	if b, _ := db.WriteStats(); b-b0 != 2 {
		t.Errorf("%d transactions committed, want the blocker's and the Sends' run again", b-b0)
	}
	if got := entriesOf(t, db, ids[1]); got != "1:m1 2:m2" {
		t.Errorf("entries %s", got)
	}
	var head uint64
	if err := db.Read(context.Background(), func(tx *Tx) (err error) { head, _, err = tx.MailboxState(ids[1]); return err }); err != nil || head != 2 {
		t.Errorf("head %d (%v), want 2", head, err)
	}
	if r1.ConvSeq != 1 || r2.ConvSeq != 2 {
		t.Errorf("records %+v %+v", r1, r2)
	}
}
