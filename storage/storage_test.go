package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

func openTest(t testing.TB) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hearth.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func TestMigrationsIdempotent(t *testing.T) {
	db, path := openTest(t)
	ctx := context.Background()
	v1, err := db.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if v1 != len(ms) || v1 == 0 {
		t.Fatalf("version %d, want %d", v1, len(ms))
	}
	mustWrite(t, db, func(tx *Tx) error { return tx.InsertUser(&User{Name: "alice", PassHash: "h", CreatedMs: 1}) })
	db.Close()
	for i := 0; i < 2; i++ {
		db2, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("reopen %d: %v", i, err)
		}
		v2, err := db2.Version(ctx)
		if err != nil || v2 != v1 {
			t.Fatalf("reopen %d: version %d, %v", i, v2, err)
		}
		var n int
		if err := db2.r.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(ms) {
			t.Fatalf("schema_migrations rows %d, %v", n, err)
		}
		if err := db2.Read(ctx, func(tx *Tx) error { _, err := tx.UserByName("alice"); return err }); err != nil {
			t.Fatalf("data lost on reopen: %v", err)
		}
		db2.Close()
	}
}

func TestPragmas(t *testing.T) {
	db, _ := openTest(t)
	var mode string
	var syncMode, fk, busy int
	if err := db.r.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("reader journal_mode %q %v", mode, err)
	}
	if err := db.r.QueryRow(`PRAGMA synchronous`).Scan(&syncMode); err != nil || syncMode != 2 {
		t.Fatalf("reader synchronous %d %v", syncMode, err)
	}
	if err := db.r.QueryRow(`PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Fatalf("reader foreign_keys %d %v", fk, err)
	}
	if err := db.r.QueryRow(`PRAGMA busy_timeout`).Scan(&busy); err != nil || busy != 5000 {
		t.Fatalf("reader busy_timeout %d %v", busy, err)
	}
	var temp int
	for _, pool := range []*sql.DB{db.w, db.r} {
		if err := pool.QueryRow(`PRAGMA temp_store`).Scan(&temp); err != nil || temp != 2 {
			t.Fatalf("temp_store %d %v, want 2 (memory)", temp, err)
		}
	}
	// The read pool must refuse writes.
	if err := db.Read(context.Background(), func(tx *Tx) error {
		return tx.InsertUser(&User{Name: "x", PassHash: "h"})
	}); err == nil {
		t.Fatal("write succeeded inside Read")
	}
}

func mustWrite(t testing.TB, db *DB, fn func(*Tx) error) {
	t.Helper()
	if err := db.Write(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

// TestGroupCommitIsolatesFailures runs many concurrent writers, one of
// which fails after writing: the others commit, the failing one leaves
// nothing behind, and the writer grouped requests into fewer transactions.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	db, _ := openTest(t)
	const n = 200
	errBoom := errors.New("boom")
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = db.Write(context.Background(), func(tx *Tx) error {
				if err := tx.InsertUser(&User{Name: fmt.Sprintf("u%03d", i), PassHash: "h", CreatedMs: 1}); err != nil {
					return err
				}
				if i == 77 {
					return errBoom // after a successful insert: must be rolled back
				}
				if i == 78 {
					panic("writer must survive this")
				}
				return nil
			})
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		switch i {
		case 77:
			if !errors.Is(err, errBoom) {
				t.Fatalf("request 77: got %v, want boom", err)
			}
		case 78:
			if err == nil {
				t.Fatal("panicking request reported success")
			}
		default:
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
		}
	}
	var count int
	if err := db.Read(context.Background(), func(tx *Tx) error { var err error; count, err = tx.CountUsers(); return err }); err != nil {
		t.Fatal(err)
	}
	if count != n-2 {
		t.Fatalf("%d users committed, want %d", count, n-2)
	}
	for _, name := range []string{"u077", "u078"} {
		err := db.Read(context.Background(), func(tx *Tx) error { _, err := tx.UserByName(name); return err })
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s: got %v, want ErrNotFound (rolled back)", name, err)
		}
	}
	batches, reqs := db.WriteStats()
	t.Logf("group commit: %d requests in %d transactions", reqs, batches)
	if reqs != n || batches == 0 {
		t.Fatalf("stats: %d requests in %d batches", reqs, batches)
	}
	// A conflicting insert is an ordinary failure, not a broken batch.
	err := db.Write(context.Background(), func(tx *Tx) error { return tx.InsertUser(&User{Name: "u001", PassHash: "h"}) })
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate name: got %v, want ErrConflict", err)
	}
}

func TestWriteAfterClose(t *testing.T) {
	db, _ := openTest(t)
	db.Close()
	if err := db.Write(context.Background(), func(*Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("got %v, want ErrClosed", err)
	}
}
