package storage

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// TestSubmitAckBatch: acks queued while the writer is busy are applied
// together in the next transaction (99 devices: two multi-row statements
// of 64 and 35), per device the highest; an ack beyond the head is
// refused alone while the same device's lower acks succeed, and so is an
// ack of a device without a mailbox or beyond any sequence.
func TestSubmitAckBatch(t *testing.T) {
	db, _ := openTest(t)
	ids := fixture(t, db, "c", 100)
	for seq := uint64(1); seq <= 3; seq++ {
		mustWrite(t, db, func(tx *Tx) error { _, err := appendMsg(tx, "c@x", ids[0], seq, "x"); return err })
	}
	ctx := context.Background()
	b0, _ := db.WriteStats()
	release := make(chan struct{})
	blocker := db.Submit(ctx, func(tx *Tx) error { <-release; return nil })
	time.Sleep(20 * time.Millisecond) // the blocker is running: the acks queue behind it
	type sub struct {
		dev  string
		upTo uint64
		want error
		wait func() error
	}
	var subs []*sub
	add := func(dev string, upTo uint64, want error) {
		subs = append(subs, &sub{dev: dev, upTo: upTo, want: want, wait: db.SubmitAck(ctx, dev, upTo)})
	}
	for _, id := range ids[1:] {
		add(id, 2, nil)
		add(id, 1, nil)
	}
	add(ids[1], 5, ErrNotFound)     // beyond the head of 3
	add("nope", 1, ErrNotFound)     // no mailbox
	add(ids[2], 1<<63, ErrNotFound) // beyond any sequence
	add(ids[0], 0, nil)             // the sender's own mailbox is empty: 0 is its head
	close(release)
	if err := blocker(); err != nil {
		t.Fatal(err)
	}
	for _, s := range subs {
		if err := s.wait(); (s.want == nil) != (err == nil) || (s.want != nil && !errors.Is(err, s.want)) {
			t.Errorf("ack %s up to %d: %v, want %v", s.dev, s.upTo, err, s.want)
		}
	}
	if b1, _ := db.WriteStats(); b1-b0 != 2 {
		t.Errorf("%d transactions for the blocker and %d acks, want 2", b1-b0, len(subs))
	}
	err := db.Read(ctx, func(tx *Tx) error {
		for _, id := range ids[1:] {
			head, acked, err := tx.MailboxState(id)
			if err != nil {
				return err
			}
			if head != 3 || acked != 2 {
				return fmt.Errorf("device %s: head %d acked %d, want 3 and 2", id, head, acked)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// An ack never lowers.
	if err := db.SubmitAck(ctx, ids[1], 1)(); err != nil {
		t.Fatal(err)
	}
	db.Read(ctx, func(tx *Tx) error {
		if _, acked, err := tx.MailboxState(ids[1]); err != nil || acked != 2 {
			t.Fatalf("after a lower ack: acked %d (%v), want 2", acked, err)
		}
		return nil
	})
}

// TestAckDelay: a transaction of acks alone waits for another request to
// share its commit: an ack submitted 50 ms before a write commits with it
// in one transaction; an ack alone is still committed when the database
// closes during its wait.
func TestAckDelay(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "hearth.db"), Options{AckDelay: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ids := fixture(t, db, "c", 2)
	mustWrite(t, db, func(tx *Tx) error { _, err := appendMsg(tx, "c@x", ids[0], 1, "x"); return err })
	ctx := context.Background()
	b0, r0 := db.WriteStats()
	ack := db.SubmitAck(ctx, ids[1], 1)
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := db.Write(ctx, func(tx *Tx) error { _, err := appendMsg(tx, "c@x", ids[0], 2, "y"); return err }); err != nil {
		t.Fatal(err)
	}
	if err := ack(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the write waited %v behind the ack's delay", d)
	}
	if b1, r1 := db.WriteStats(); b1-b0 != 1 || r1-r0 != 2 {
		t.Fatalf("ack then write: %d transactions for %d requests, want 1 for 2", b1-b0, r1-r0)
	}

	ack = db.SubmitAck(ctx, ids[1], 2)
	done := make(chan error, 1)
	go func() { done <- ack() }()
	select {
	case err := <-done:
		t.Fatalf("an ack alone committed at once (%v): it should wait for company", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the ack's wait")
	}
	db2, err := Open(db.Path(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	db2.Read(ctx, func(tx *Tx) error {
		if _, acked, err := tx.MailboxState(ids[1]); err != nil || acked != 2 {
			t.Fatalf("after reopening: acked %d (%v), want 2", acked, err)
		}
		return nil
	})
}
