package storage

import (
	"context"
	"errors"
	"testing"
)

// TestStatementsLearned: a query outside the hot set is prepared inside its
// first transaction and then cached on the pool, so later transactions
// (reads and group-commit writes) reuse it instead of preparing it again;
// a query that failed (ErrNotFound) is learned too.
func TestStatementsLearned(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	qUser := `SELECT ` + userCols + ` FROM users WHERE name = ?` // UserByName's query
	if db.rstmts.get(qUser) != nil {
		t.Fatal("premise: UserByName's query must not be prepared at Open")
	}
	wBefore, rBefore := db.wstmts.len(), db.rstmts.len()
	mustWrite(t, db, func(tx *Tx) error { return tx.InsertUser(&User{Name: "alice", PassHash: "h", CreatedMs: 1}) })
	if db.wstmts.len() <= wBefore {
		t.Fatalf("writer cache did not learn: %d -> %d", wBefore, db.wstmts.len())
	}
	_, err := readUser(db, "nobody")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing user: %v", err)
	}
	if db.rstmts.len() <= rBefore || db.rstmts.get(qUser) == nil {
		t.Fatalf("read cache did not learn from a failed read: %d -> %d", rBefore, db.rstmts.len())
	}
	// Later transactions find every statement they use in the cache.
	var missed []string
	err = db.readTx(ctx, func(tx *Tx) error {
		u, err := tx.UserByName("alice")
		if err == nil && u.Name != "alice" {
			t.Errorf("read %q", u.Name)
		}
		return err
	}, &missed)
	if err != nil || len(missed) != 0 {
		t.Fatalf("second read: err %v, prepared again: %q", err, missed)
	}
	n := db.wstmts.len()
	mustWrite(t, db, func(tx *Tx) error { return tx.InsertUser(&User{Name: "bob", PassHash: "h", CreatedMs: 2}) })
	if db.wstmts.len() != n {
		t.Fatalf("second write learned again: %d -> %d", n, db.wstmts.len())
	}
	if u, err := readUser(db, "bob"); err != nil || u.Name != "bob" {
		t.Fatalf("bob: %v %v", u, err)
	}
}

func readUser(db *DB, name string) (u *User, err error) {
	err = db.Read(context.Background(), func(tx *Tx) error { u, err = tx.UserByName(name); return err })
	return u, err
}

// BenchmarkDeviceListRead is the read behind every device-list fetch (a
// client fetches its peer's list before each send): user by name, identity
// key, signed list, in one read transaction. None of these queries is in
// the hot set prepared at Open.
func BenchmarkDeviceListRead(b *testing.B) {
	db, _ := openTest(b)
	mustWrite(b, db, func(tx *Tx) error {
		if err := tx.InsertUser(&User{Name: "carol", PassHash: "h", CreatedMs: 1}); err != nil {
			return err
		}
		u, err := tx.UserByName("carol")
		if err != nil {
			return err
		}
		if err := tx.InsertIdentityKey(u.ID, make([]byte, 32), 1); err != nil {
			return err
		}
		return tx.PutDeviceList(u.ID, &SignedList{Version: 1, List: make([]byte, 300), Signature: make([]byte, 64), UpdatedMs: 1})
	})
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		err := db.Read(ctx, func(tx *Tx) error {
			u, err := tx.UserByName("carol")
			if err != nil {
				return err
			}
			if _, err := tx.IdentityKey(u.ID); err != nil {
				return err
			}
			_, err = tx.DeviceList(u.ID)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPushRead is the read a pusher does for each delivery in steady
// 1:1 traffic: right after a write committed one new entry, read the
// entries after the last one pushed. Only the read is timed; the write
// before it makes every read start on a database that changed (in WAL
// mode a reader then starts with an empty page cache).
func BenchmarkPushRead(b *testing.B) {
	db, _ := openTest(b)
	ids := fixture(b, db, "p", 2)
	// A mailbox of some size, as on a server that has been running.
	for s := uint64(1); s <= 2048; s += 64 {
		mustWrite(b, db, func(tx *Tx) error {
			for k := s; k < s+64; k++ {
				if _, err := appendMsg(tx, "p@x", ids[0], k, "an older message of a typical size, two hundred bytes or so"); err != nil {
					return err
				}
			}
			return nil
		})
	}
	ctx := context.Background()
	seq := uint64(2048)
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		seq++
		mustWrite(b, db, func(tx *Tx) error {
			_, err := appendMsg(tx, "p@x", ids[0], seq, "a new message of a typical size, two hundred bytes or so")
			return err
		})
		b.StartTimer()
		var es []*Entry
		err := db.Read(ctx, func(tx *Tx) (err error) { es, err = tx.Entries(ids[1], seq-1, 64); return err })
		if err != nil || len(es) != 1 {
			b.Fatalf("read %d entries: %v", len(es), err)
		}
	}
}
