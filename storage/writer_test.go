package storage

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// TestWriterCommitDelay checks the writer's linger: a lone caller writing
// one request after another never waits (with a CommitDelay of a minute,
// each Write would otherwise take a minute), and after a transaction that
// carried several requests the next one waits for more (here until
// MaxBatch is reached), so that two Writes submitted 50 ms apart share
// one transaction. Close ends a linger at once.
func TestWriterCommitDelay(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "hearth.db"), Options{MaxBatch: 2, CommitDelay: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	n := 0
	insert := func(tx *Tx) error {
		n++
		return tx.InsertUser(&User{Name: fmt.Sprint("u", n), PassHash: "h", CreatedMs: int64(n)})
	}

	// One caller, one request at a time: no linger.
	start := time.Now()
	for range 20 {
		if err := db.Write(ctx, insert); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("20 sequential writes took %v: the writer lingered for a lone caller", d)
	}
	if b, r := db.WriteStats(); b != 20 || r != 20 {
		t.Fatalf("sequential writes: %d transactions for %d requests, want 20 for 20", b, r)
	}

	// Two requests queued while the writer is busy share the next
	// transaction, which makes the writer linger for the one after.
	release := make(chan struct{})
	waitA := db.Submit(ctx, func(tx *Tx) error { <-release; return insert(tx) })
	time.Sleep(20 * time.Millisecond) // A is running
	waitB, waitC := db.Submit(ctx, insert), db.Submit(ctx, insert)
	close(release)
	for _, w := range []func() error{waitA, waitB, waitC} {
		if err := w(); err != nil {
			t.Fatal(err)
		}
	}
	if b, r := db.WriteStats(); b != 22 || r != 23 {
		t.Fatalf("after A alone and B+C together: %d transactions for %d requests, want 22 for 23", b, r)
	}
	waitD := db.Submit(ctx, insert)
	done := make(chan error, 1)
	go func() { done <- waitD() }()
	select {
	case err := <-done:
		t.Fatalf("D committed alone (err %v) although the writer should wait for more", err)
	case <-time.After(50 * time.Millisecond):
	}
	waitE := db.Submit(ctx, insert)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := waitE(); err != nil {
		t.Fatal(err)
	}
	if b, r := db.WriteStats(); b != 23 || r != 25 {
		t.Fatalf("D and E: %d transactions for %d requests, want 23 for 25 (one transaction for both)", b, r)
	}

	// The writer lingers again for F; Close must not wait for the delay.
	waitF := db.Submit(ctx, insert)
	time.Sleep(20 * time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for the commit delay")
	}
	if err := waitF(); err != nil {
		t.Fatalf("F, queued before Close: %v", err)
	}
	var users int
	if err := func() error {
		db2, err := Open(db.Path(), Options{})
		if err != nil {
			return err
		}
		defer db2.Close()
		return db2.Read(ctx, func(tx *Tx) error { return tx.tx.QueryRow(`SELECT COUNT(*) FROM users`).Scan(&users) })
	}(); err != nil {
		t.Fatal(err)
	}
	if users != 26 {
		t.Fatalf("%d users committed, want 26", users)
	}
}

// TestClaimSendRecord: the claim writes the dedup record when there is
// none and reports false, changing nothing, when there is one.
func TestClaimSendRecord(t *testing.T) {
	db, _ := openTest(t)
	rec := &SendRecord{Sender: "a@x/D1", MessageID: "m1", ConvID: "c@x", ConvSeq: 7, Epoch: 2, CreatedMs: 1000}
	var first, second bool
	mustWrite(t, db, func(tx *Tx) (err error) {
		if first, err = tx.ClaimSendRecord(rec); err != nil {
			return err
		}
		other := *rec
		other.ConvSeq, other.CreatedMs = 9, 2000
		second, err = tx.ClaimSendRecord(&other)
		return err
	})
	if !first || second {
		t.Fatalf("claims: first %v second %v, want true then false", first, second)
	}
	var got *SendRecord
	if err := db.Read(context.Background(), func(tx *Tx) (err error) { got, err = tx.SendRecord("a@x/D1", "m1"); return err }); err != nil {
		t.Fatal(err)
	}
	if *got != *rec {
		t.Fatalf("record %+v, want the first claim %+v", got, rec)
	}
}
