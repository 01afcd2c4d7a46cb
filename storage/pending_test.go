package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestPendingRowsInOneTransaction: the mailbox rows of three Sends that
// share a transaction are inserted together, and what each sees and
// leaves is as if each had inserted its own: B reads the mailbox after
// its fan-out (so A's and its own rows go in first), then fails; its
// rollback takes its own row and head, while A's row, inserted inside
// B's savepoint, is inserted again; C takes the mailbox sequence B gave
// back. A request that reads nothing of the mailbox leaves its rows to
// the end of the transaction: three Sends, one multi-row insert.
func TestPendingRowsInOneTransaction(t *testing.T) {
	db, _ := openTest(t)
	ids := fixture(t, db, "c", 2)
	ctx := context.Background()
	errB := errors.New("B refused")
	release := make(chan struct{})
	blocker := db.Submit(ctx, func(tx *Tx) error { <-release; return nil })
	time.Sleep(20 * time.Millisecond) // the blocker runs: A, B and C queue for the next transaction
	waits := []func() error{db.Submit(ctx, func(tx *Tx) error { _, err := appendMsg(tx, "c@x", ids[0], 1, "A"); return err })}
	waits = append(waits, db.Submit(ctx, func(tx *Tx) error {
		if _, err := appendMsg(tx, "c@x", ids[0], 2, "B"); err != nil {
			return err
		}
		es, err := tx.Entries(ids[1], 0, 10)
		if err != nil {
			return err
		}
		if len(es) != 2 || string(es[0].Payload) != "A" || string(es[1].Payload) != "B" || es[1].Seq != 2 {
			return fmt.Errorf("B sees %d entries: %+v", len(es), es)
		}
		return errB
	}))
	waits = append(waits, db.Submit(ctx, func(tx *Tx) error { _, err := appendMsg(tx, "c@x", ids[0], 3, "C"); return err }))
	close(release)
	if err := blocker(); err != nil {
		t.Fatal(err)
	}
	for i, w := range waits {
		if err := w(); i == 1 {
			if !errors.Is(err, errB) {
				t.Fatalf("B: %v", err)
			}
		} else if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	err := db.Read(ctx, func(tx *Tx) error {
		es, err := tx.Entries(ids[1], 0, 10)
		if err != nil {
			return err
		}
		if len(es) != 2 || es[0].Seq != 1 || string(es[0].Payload) != "A" || es[1].Seq != 2 || es[1].ConvSeq != 3 || string(es[1].Payload) != "C" {
			return fmt.Errorf("after A, refused B, C: %d entries %+v", len(es), es)
		}
		head, _, err := tx.MailboxState(ids[1])
		if err != nil || head != 2 {
			return fmt.Errorf("head %d (%v), want 2", head, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// A fresh conversation: two Sends, nothing reads the mailbox.
	ids = fixture(t, db, "d", 2)
	fixtureMsg := func(tx *Tx, seq uint64) error { _, err := appendMsg(tx, "d@x", ids[0], seq, "x"); return err }
	release = make(chan struct{})
	blocker = db.Submit(ctx, func(tx *Tx) error { <-release; return nil })
	time.Sleep(20 * time.Millisecond)
	s0 := db.WriteStatements()
	w1 := db.Submit(ctx, func(tx *Tx) error { return fixtureMsg(tx, 1) })
	w2 := db.Submit(ctx, func(tx *Tx) error { return fixtureMsg(tx, 2) })
	close(release)
	for _, w := range []func() error{blocker, w1, w2} {
		if err := w(); err != nil {
			t.Fatal(err)
		}
	}
	// The blocker's RELEASE; per Send: savepoint, log, heads, the
	// entry's references (FanOut counts them), release; one insert of
	// both rows and one advance of the conversation.
	if n := db.WriteStatements() - s0; n != 1+2*5+2 {
		t.Errorf("two Sends in one transaction ran %d statements, want 13", n)
	}
	db.Read(ctx, func(tx *Tx) error {
		if es, err := tx.Entries(ids[1], 0, 10); err != nil || len(es) != 2 || es[1].Seq != 2 {
			t.Errorf("entries %+v (%v)", es, err)
		}
		return nil
	})
}

// TestPendingRowsNestedSavepoint: rows fanned out before a nested
// savepoint stay when it rolls back; the rows fanned out inside it go
// with it.
func TestPendingRowsNestedSavepoint(t *testing.T) {
	db, _ := openTest(t)
	ids := fixture(t, db, "c", 2)
	inner := errors.New("inner refused")
	mustWrite(t, db, func(tx *Tx) error {
		if _, err := appendMsg(tx, "c@x", ids[0], 1, "outer"); err != nil {
			return err
		}
		err := tx.Savepoint(func() error {
			if _, err := appendMsg(tx, "c@x", ids[0], 2, "inner"); err != nil {
				return err
			}
			return inner
		})
		if !errors.Is(err, inner) {
			return fmt.Errorf("savepoint: %v", err)
		}
		_, err = appendMsg(tx, "c@x", ids[0], 3, "after")
		return err
	})
	db.Read(context.Background(), func(tx *Tx) error {
		es, err := tx.Entries(ids[1], 0, 10)
		if err != nil || len(es) != 2 || string(es[0].Payload) != "outer" || string(es[1].Payload) != "after" || es[1].Seq != 2 {
			t.Fatalf("entries %+v (%v)", es, err)
		}
		return nil
	})
}

// TestPendingLogInOneTransaction: log entries queued by three Sends that
// share a transaction go in together, and each request's rollback takes
// its own with it: B reads the log after queueing its entry (so A's and
// its own go in), then fails; A's entry, inserted inside B's savepoint,
// waits again; C takes the sequence B gave back. A notice about A's
// message counts on A's entry once, not again when the request that
// added it fails. Sends that read nothing of the log leave their entries
// to the end of the transaction: one multi-row insert.
func TestPendingLogInOneTransaction(t *testing.T) {
	db, _ := openTest(t)
	ids := fixture(t, db, "c", 2)
	ctx := context.Background()
	errB := errors.New("B refused")
	release := make(chan struct{})
	blocker := db.Submit(ctx, func(tx *Tx) error { <-release; return nil })
	time.Sleep(20 * time.Millisecond) // the blocker runs: the others queue for the next transaction
	send := func(body string, then func(tx *Tx) error) func() error {
		return db.Submit(ctx, func(tx *Tx) error {
			if err := sendLikeHub(tx, "c@x", ids[0], body, []byte(body), 1); err != nil {
				return err
			}
			return then(tx)
		})
	}
	none := func(*Tx) error { return nil }
	waits := []func() error{send("A", none), send("B", func(tx *Tx) error {
		es, err := tx.Entries(ids[1], 0, 10)
		if err != nil {
			return err
		}
		if len(es) != 2 || string(es[0].Payload) != "A" || string(es[1].Payload) != "B" || es[1].ConvSeq != 2 {
			return fmt.Errorf("B sees %d entries: %+v", len(es), es)
		}
		return errB
	}), send("C", none), db.Submit(ctx, func(tx *Tx) error {
		if _, err := tx.AppendMailboxNotice(ids[0], "c@x", 1, "A", "u@x/"+ids[0], "other", 1); err != nil {
			return err
		}
		return errB
	}), db.Submit(ctx, func(tx *Tx) error {
		_, err := tx.AppendMailboxNotice(ids[0], "c@x", 1, "A", "u@x/"+ids[0], "other", 1)
		return err
	})}
	close(release)
	if err := blocker(); err != nil {
		t.Fatal(err)
	}
	for i, w := range waits {
		if err := w(); i == 1 || i == 3 {
			if !errors.Is(err, errB) {
				t.Fatalf("request %d: %v", i, err)
			}
		} else if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	checkRefs(t, db)
	err := db.Read(ctx, func(tx *Tx) error {
		es, err := tx.Entries(ids[1], 0, 10)
		if err != nil {
			return err
		}
		if len(es) != 2 || es[0].ConvSeq != 1 || string(es[0].Payload) != "A" || es[1].ConvSeq != 2 || string(es[1].Payload) != "C" {
			return fmt.Errorf("after A, refused B, C: %d entries %+v", len(es), es)
		}
		var refs int
		if err := tx.row(`SELECT refs FROM conversation_log WHERE conv_id = 'c@x' AND seq = 1`, nil, &refs); err != nil || refs != 2 {
			return fmt.Errorf("A's entry counts %d rows (%v), want 2: a delivery and one notice", refs, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Two Sends, nothing reads the mailbox or the log.
	ids = fixture(t, db, "d", 2)
	release = make(chan struct{})
	blocker = db.Submit(ctx, func(tx *Tx) error { <-release; return nil })
	time.Sleep(20 * time.Millisecond)
	s0 := db.WriteStatements()
	w1 := db.Submit(ctx, func(tx *Tx) error { return sendLikeHub(tx, "d@x", ids[0], "1", []byte("x"), 1) })
	w2 := db.Submit(ctx, func(tx *Tx) error { return sendLikeHub(tx, "d@x", ids[0], "2", []byte("x"), 1) })
	close(release)
	for _, w := range []func() error{blocker, w1, w2} {
		if err := w(); err != nil {
			t.Fatal(err)
		}
	}
	// The blocker's RELEASE; per Send: savepoint, conversation, dedup
	// claim, heads, release; one insert of both log entries, one of both
	// mailbox rows and one advance of the conversation.
	if n := db.WriteStatements() - s0; n != 1+2*5+3 {
		t.Errorf("two Sends in one transaction ran %d statements, want 14", n)
	}
	checkRefs(t, db)
	if got := logSeqs(t, db, "d@x"); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("log %v", got)
	}
}

// TestPendingLogNestedSavepoint: an entry queued inside a nested
// savepoint goes in at once and goes with the savepoint's rollback; one
// queued before it stays.
func TestPendingLogNestedSavepoint(t *testing.T) {
	db, _ := openTest(t)
	ids := fixture(t, db, "c", 2)
	inner := errors.New("inner refused")
	mustWrite(t, db, func(tx *Tx) error {
		if err := sendLikeHub(tx, "c@x", ids[0], "outer", []byte("outer"), 1); err != nil {
			return err
		}
		err := tx.Savepoint(func() error {
			if err := sendLikeHub(tx, "c@x", ids[0], "inner", []byte("inner"), 1); err != nil {
				return err
			}
			if n := len(tx.pend.logs); n != 0 {
				return fmt.Errorf("%d entries wait inside a nested savepoint", n)
			}
			return inner
		})
		if !errors.Is(err, inner) {
			return fmt.Errorf("savepoint: %v", err)
		}
		return sendLikeHub(tx, "c@x", ids[0], "after", []byte("after"), 1)
	})
	checkRefs(t, db)
	db.Read(context.Background(), func(tx *Tx) error {
		es, err := tx.Entries(ids[1], 0, 10)
		if err != nil || len(es) != 2 || string(es[0].Payload) != "outer" || string(es[1].Payload) != "after" || es[1].ConvSeq != 2 {
			t.Fatalf("entries %+v (%v)", es, err)
		}
		return nil
	})
}

// TestQueuedLogRefs: rows fanned out for a queued entry count on it,
// whether the entry is the request's own (counted before it goes in) or
// an earlier request's, whose count a failed request must not keep.
func TestQueuedLogRefs(t *testing.T) {
	db, _ := openTest(t)
	ids := fixture(t, db, "c", 3)
	ctx := context.Background()
	fail := errors.New("refused")
	release := make(chan struct{})
	blocker := db.Submit(ctx, func(tx *Tx) error { <-release; return nil })
	time.Sleep(20 * time.Millisecond)
	w1 := db.Submit(ctx, func(tx *Tx) error {
		if err := tx.QueueLog(&LogEntry{ConvID: "c@x", Seq: 1, Sender: "u@x/" + ids[0], MessageID: "m1", Kind: 1, Payload: []byte("x"), CreatedMs: 1}); err != nil {
			return err
		}
		_, err := tx.FanOut("c@x", 1, ids[0], false, 0, 1) // the request's own entry: 2 rows
		return err
	})
	w2 := db.Submit(ctx, func(tx *Tx) error {
		if _, err := tx.FanOut("c@x", 1, ids[1], false, 0, 1); err != nil { // an earlier request's entry: 2 rows more
			return err
		}
		return fail
	})
	close(release)
	if err := blocker(); err != nil {
		t.Fatal(err)
	}
	if err := w1(); err != nil {
		t.Fatal(err)
	}
	if err := w2(); !errors.Is(err, fail) {
		t.Fatal(err)
	}
	checkRefs(t, db)
}

// TestPendingAdvance: conversations' advances wait in the writer, and
// every read of a conversation in the transaction sees its latest; a
// failed request's advance goes with its rollback (B, refused without a
// flush inside it), so the next Send takes the sequence it gave back; the
// transaction leaves each conversation at its last advance.
func TestPendingAdvance(t *testing.T) {
	db, _ := openTest(t)
	c := fixture(t, db, "c", 2)
	d := fixture(t, db, "d", 2)
	ctx := context.Background()
	errB := errors.New("B refused")
	release := make(chan struct{})
	blocker := db.Submit(ctx, func(tx *Tx) error { <-release; return nil })
	time.Sleep(20 * time.Millisecond)
	s0 := db.WriteStatements()
	sub := func(conv string, dev, id string, err error) func() error {
		return db.Submit(ctx, func(tx *Tx) error {
			if e := sendLikeHub(tx, conv, dev, id, []byte(id), 1); e != nil {
				return e
			}
			return err
		})
	}
	waits := []func() error{sub("c@x", c[0], "A", nil), sub("c@x", c[0], "B", errB), sub("c@x", c[1], "C", nil),
		sub("d@x", d[0], "D", nil), sub("c@x", c[0], "E", nil),
		db.Submit(ctx, func(tx *Tx) error {
			for _, tc := range []struct {
				conv string
				seq  uint64
			}{{"c@x", 3}, {"d@x", 1}} {
				v, err := tx.ConversationForSend(tc.conv, "u@x/x", "x", false)
				if err != nil {
					return err
				}
				m, err := tx.ConversationMeta(tc.conv)
				if err != nil {
					return err
				}
				full, err := tx.Conversation(tc.conv)
				if err != nil {
					return err
				}
				if v.Conv.LastSeq != tc.seq || m.LastSeq != tc.seq || full.LastSeq != tc.seq {
					return fmt.Errorf("%s read at %d, %d, %d, want %d", tc.conv, v.Conv.LastSeq, m.LastSeq, full.LastSeq, tc.seq)
				}
			}
			return nil
		})}
	close(release)
	if err := blocker(); err != nil {
		t.Fatal(err)
	}
	for i, w := range waits {
		if err := w(); i == 1 {
			if !errors.Is(err, errB) {
				t.Fatalf("B: %v", err)
			}
		} else if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	// The blocker's RELEASE; per Send 4 statements (savepoint, dedup
	// claim, heads, release), and 2 more where the writer's send views read the
	// conversation: A, C (B's rollback emptied them; it costs one
	// more) and D; the reader's savepoint, four reads (its
	// ConversationForSend from the views) and release; at the end the log
	// entries, rows and advances of the two conversations: one statement
	// each.
	if n := db.WriteStatements() - s0; n != 1+5*4+3*2+1+6+3 {
		t.Errorf("%d statements, want 37", n)
	}
	checkRefs(t, db)
	db.Read(ctx, func(tx *Tx) error {
		for conv, want := range map[string]uint64{"c@x": 3, "d@x": 1} {
			if got, err := tx.Conversation(conv); err != nil || got.LastSeq != want {
				t.Errorf("%s: %+v %v, want last seq %d", conv, got, err, want)
			}
		}
		es, err := tx.Entries(c[1], 0, 10)
		if err != nil || len(es) != 2 || string(es[0].Payload) != "A" || string(es[1].Payload) != "E" || es[1].ConvSeq != 3 {
			t.Errorf("c1's entries %+v (%v)", es, err)
		}
		return nil
	})
}
