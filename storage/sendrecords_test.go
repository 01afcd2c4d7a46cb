package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// recordOf reads (sender, messageID)'s dedup record through the read pool.
func recordOf(t *testing.T, db *DB, sender, messageID string) (*SendRecord, error) {
	t.Helper()
	var r *SendRecord
	err := db.Read(context.Background(), func(tx *Tx) (err error) { r, err = tx.SendRecord(sender, messageID); return err })
	return r, err
}

// rawAtSchema makes a database file with the first version migrations
// applied (an older server's), opened without this code's migrations:
// the caller fills it as that server would have, closes raw and opens
// path with Open.
func rawAtSchema(t *testing.T, version int) (raw *sql.DB, path string) {
	t.Helper()
	ctx := context.Background()
	path = filepath.Join(t.TempDir(), "hearth.db")
	raw, err := sql.Open(driverName, dsn(path, Options{}.withDefaults(), false))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.ExecContext(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ms INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[:version] {
		if err := applyMigration(ctx, raw, m); err != nil {
			t.Fatal(err)
		}
	}
	return raw, path
}

// openMigrated closes raw (made by rawAtSchema) and opens path with this
// code, which runs the newer migrations.
func openMigrated(t *testing.T, raw *sql.DB, path string) *DB {
	t.Helper()
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// openSchema15 makes a database at schema 15 (before migration 0016)
// with a 1:1 conversation of three messages, their mailbox rows and the
// dedup records old, then opens it with this code.
func openSchema15(t *testing.T, old []SendRecord) *DB {
	t.Helper()
	ctx := context.Background()
	raw, path := rawAtSchema(t, 15)
	if _, err := raw.ExecContext(ctx, `
		INSERT INTO users(id, name, pass_hash, created_ms) VALUES (1, 'u', 'h', 1);
		INSERT INTO devices(id, user_id, name, status, created_ms) VALUES ('a1', 1, 'd', 2, 1), ('b1', 1, 'd', 2, 1);
		INSERT INTO mailbox_state(device_id, head, acked) VALUES ('a1', 1, 0), ('b1', 2, 0);
		INSERT INTO conversations(id, kind, creator, epoch, last_seq, created_ms) VALUES ('c@x', 1, 'u@x/a1', 2, 3, 1);
		INSERT INTO conversation_members(conv_id, address, device_id, added_epoch) VALUES ('c@x', 'u@x/a1', 'a1', 0), ('c@x', 'u@x/b1', 'b1', 0);
		INSERT INTO conversation_log(conv_id, seq, sender, message_id, kind, epoch, payload, created_ms, refs) VALUES
			('c@x', 1, 'u@x/a1', 'm1', 1, 1, x'01', 1000, 1), ('c@x', 2, 'u@x/a1', 'm2', 1, 1, x'02', 2000, 1),
			('c@x', 3, 'u@x/b1', 'm1', 1, 2, x'03', 1500, 1);
		INSERT INTO mailbox(device_id, seq, conv_id, conv_seq, created_ms) VALUES ('b1', 1, 'c@x', 1, 1000), ('b1', 2, 'c@x', 2, 2000),
			('a1', 1, 'c@x', 3, 1500);`); err != nil {
		t.Fatal(err)
	}
	for _, r := range old {
		if _, err := raw.ExecContext(ctx, `INSERT INTO sends(sender, message_id, conv_id, conv_seq, epoch, created_ms) VALUES (?, ?, ?, ?, ?, ?)`,
			r.Sender, r.MessageID, r.ConvID, r.ConvSeq, r.Epoch, r.CreatedMs); err != nil {
			t.Fatal(err)
		}
	}
	return openMigrated(t, raw, path)
}

// TestSendRecordsMigrated: a database at schema 15 with dedup records,
// log entries and mailbox rows, opened by this code (migration 0016),
// answers every retry with the record it had, refuses a second claim,
// takes new Sends after the old ones, delivers the old and new entries in
// order, and lets retention delete the old records once the newest of
// them is older than the window, the new ones not before theirs.
func TestSendRecordsMigrated(t *testing.T) {
	ctx := context.Background()
	old := []SendRecord{
		{Sender: "u@x/a1", MessageID: "m1", ConvID: "c@x", ConvSeq: 1, Epoch: 1, CreatedMs: 1000},
		{Sender: "u@x/a1", MessageID: "m2", ConvID: "c@x", ConvSeq: 2, Epoch: 1, CreatedMs: 2000},
		// A message accepted by another hub (its clock): the answer keeps it.
		{Sender: "u@x/a1", MessageID: "r1", ConvID: "g@y", ConvSeq: 7, Epoch: 3, CreatedMs: 500},
		{Sender: "u@x/b1", MessageID: "m1", ConvID: "c@x", ConvSeq: 3, Epoch: 2, CreatedMs: 1500},
	}
	db := openSchema15(t, old)
	for _, r := range old {
		got, err := recordOf(t, db, r.Sender, r.MessageID)
		if err != nil || *got != r {
			t.Fatalf("record of %s %s after the migration: %+v, %v; want %+v", r.Sender, r.MessageID, got, err, r)
		}
	}
	mustWrite(t, db, func(tx *Tx) error {
		again := old[0]
		again.ConvSeq = 99
		if ok, err := tx.ClaimSendRecord(&again); err != nil || ok {
			return fmt.Errorf("claim of a migrated record's key: %v %v", ok, err)
		}
		if err := tx.InsertSendRecord(&again); !errors.Is(err, ErrConflict) {
			return fmt.Errorf("insert of a migrated record's key: %v", err)
		}
		return sendLikeHub(tx, "c@x", "a1", "m3", []byte{4}, 3000)
	})
	got, err := recordOf(t, db, "u@x/a1", "m3")
	if err != nil || got.ConvSeq != 4 || got.Epoch != 2 {
		t.Fatalf("new record: %+v, %v", got, err)
	}
	var es []*Entry
	if err := db.Read(ctx, func(tx *Tx) (err error) { es, err = tx.Entries("b1", 0, 10); return err }); err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 || es[0].MessageID != "m1" || es[1].MessageID != "m2" || es[2].MessageID != "m3" || es[2].Seq != 3 || es[2].ConvSeq != 4 {
		t.Fatalf("b1's entries after the migration: %v", es)
	}

	// The migrated records are due once the newest of them (2000) is
	// older than the window; the new one was written after.
	retain := func(now, cutoff int64) int64 {
		var n int64
		mustWrite(t, db, func(tx *Tx) (err error) { n, err = tx.DeleteSendRecords(now, cutoff, 100); return err })
		return n
	}
	if n := retain(5000, 2000); n != 0 {
		t.Fatalf("retention with the cut-off at the newest migrated record deleted %d", n)
	}
	if n := retain(6000, 2001); n != int64(len(old)) {
		t.Fatalf("retention past the migrated records deleted %d, want %d", n, len(old))
	}
	if _, err := recordOf(t, db, "u@x/a1", "m1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a migrated record after its retention: %v", err)
	}
	if _, err := recordOf(t, db, "u@x/a1", "m3"); err != nil {
		t.Fatalf("the new record went with the migrated ones: %v", err)
	}
	if n := retain(7000, 5001); n != 1 {
		t.Fatalf("retention after the new record's mark (5000) deleted %d, want 1", n)
	}
}

// TestSendRecordKeyShared: a record whose key is another pair's (a hash
// collision, made here by hand) neither answers for that pair nor stops
// its claim.
func TestSendRecordKeyShared(t *testing.T) {
	db, _ := openTest(t)
	mustWrite(t, db, func(tx *Tx) error {
		_, err := tx.exec(`INSERT INTO send_records(key, sender, message_id, conv_id, conv_seq, epoch, created_ms) VALUES (?, 'u@x/z', 'other', 'o@x', 9, 9, 9)`,
			sendKey("u@x/a", "m1"))
		return err
	})
	if r, err := recordOf(t, db, "u@x/a", "m1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another pair's record under the key answered: %+v, %v", r, err)
	}
	rec := SendRecord{Sender: "u@x/a", MessageID: "m1", ConvID: "c@x", ConvSeq: 1, Epoch: 2, CreatedMs: 3}
	var first, second bool
	mustWrite(t, db, func(tx *Tx) (err error) {
		if first, err = tx.ClaimSendRecord(&rec); err != nil {
			return err
		}
		second, err = tx.ClaimSendRecord(&rec)
		return err
	})
	if !first || second {
		t.Fatalf("claims under a shared key: first %v, second %v; want true, false", first, second)
	}
	if r, err := recordOf(t, db, "u@x/a", "m1"); err != nil || *r != rec {
		t.Fatalf("record under a shared key: %+v, %v", r, err)
	}
}

// TestSendRecordRetention: a record is deleted no sooner than the window
// after it was written (the pass's mark, not its created_ms, which may be
// another server's clock), and by the first pass due after that; a pass
// that reaches its limit leaves the rest to the next; records written
// after the last mark are never under an earlier one.
func TestSendRecordRetention(t *testing.T) {
	db, _ := openTest(t)
	n := 0
	write := func(k int, createdMs int64) {
		mustWrite(t, db, func(tx *Tx) error {
			for range k {
				n++
				if ok, err := tx.ClaimSendRecord(&SendRecord{Sender: "u@x/a", MessageID: fmt.Sprint("m", n), ConvID: "c@x", ConvSeq: uint64(n), CreatedMs: createdMs}); err != nil || !ok {
					return fmt.Errorf("claim %d: %v %v", n, ok, err)
				}
			}
			return nil
		})
	}
	const window = 1000
	retain := func(now int64, limit int) int64 {
		var d int64
		mustWrite(t, db, func(tx *Tx) (err error) { d, err = tx.DeleteSendRecords(now, now-window, limit); return err })
		return d
	}
	left := func() (ids []int) {
		for i := 1; i <= n; i++ {
			if _, err := recordOf(t, db, "u@x/a", fmt.Sprint("m", i)); err == nil {
				ids = append(ids, i)
			} else if !errors.Is(err, ErrNotFound) {
				t.Fatal(err)
			}
		}
		return ids
	}
	// m1–m5 stamped long ago, m6–m8 far in the future (another hub's
	// clocks): neither decides when they go.
	write(5, -1_000_000)
	write(3, 1<<50)
	if d := retain(100, 10); d != 0 { // marks m1–m8 at 100
		t.Fatalf("first pass deleted %d", d)
	}
	write(4, 0)                        // m9–m12
	if d := retain(1099, 10); d != 0 { // marks m9–m12 at 1099; the mark at 100 is not older than 99
		t.Fatalf("pass within the window deleted %d", d)
	}
	if d := retain(1101, 3); d != 3 { // the mark at 100 is due: m1–m3 (the limit)
		t.Fatalf("pass with limit 3 deleted %d", d)
	}
	if d := retain(1102, 10); d != 5 { // m4–m8
		t.Fatalf("second pass deleted %d", d)
	}
	if got := fmt.Sprint(left()); got != "[9 10 11 12]" {
		t.Fatalf("left after the first mark's records went: %s", got)
	}
	write(1, 0)                        // m13, after the mark at 1099
	if d := retain(2100, 10); d != 4 { // the mark at 1099: m9–m12; marks m13 at 2100
		t.Fatalf("third pass deleted %d", d)
	}
	if got := fmt.Sprint(left()); got != "[13]" {
		t.Fatalf("left: %s, want m13", got)
	}
	if d := retain(3101, 10); d != 1 {
		t.Fatalf("fourth pass deleted %d", d)
	}
	var marks int
	if err := db.r.QueryRow(`SELECT COUNT(*) FROM send_record_marks`).Scan(&marks); err != nil || marks != 0 {
		t.Fatalf("marks left with no record: %d, %v", marks, err)
	}
	// The table is empty and its ids start again: no mark left may cover
	// a new record.
	write(1, 0) // m14
	if d := retain(3102, 10); d != 0 {
		t.Fatalf("a record written after every mark went at once: %d", d)
	}
	if got := fmt.Sprint(left()); got != "[14]" {
		t.Fatalf("left: %s, want m14", got)
	}
}

// TestSendRecordsMigratedFutureStamp: a migrated record stamped later than
// now (another hub's clock) does not keep the migrated records past a
// window after the migration.
func TestSendRecordsMigratedFutureStamp(t *testing.T) {
	before := time.Now().UnixMilli()
	db := openSchema15(t, []SendRecord{
		{Sender: "u@x/a1", MessageID: "m1", ConvID: "c@x", ConvSeq: 1, Epoch: 1, CreatedMs: 1000},
		{Sender: "u@x/a1", MessageID: "r1", ConvID: "g@y", ConvSeq: 7, Epoch: 3, CreatedMs: 1 << 60},
	})
	after := time.Now().UnixMilli()
	var n int64
	mustWrite(t, db, func(tx *Tx) (err error) { n, err = tx.DeleteSendRecords(after+1000, after+1, 100); return err })
	if n != 2 {
		t.Fatalf("a window after the migration (%d..%d) deleted %d of 2", before, after, n)
	}
}

// TestSendRecordClaimOneStatement: the claim of a new pair is one
// statement (the INSERT under a free key), a retry's claim two (the
// INSERT that finds the key taken, and the lookup that reads the answer).
func TestSendRecordClaimOneStatement(t *testing.T) {
	db, _ := openTest(t)
	rec := SendRecord{Sender: "u@x/a", MessageID: "m1", ConvID: "c@x", ConvSeq: 1, Epoch: 2, CreatedMs: 3}
	claim := func() (claimed bool, stmts uint64) {
		mustWrite(t, db, func(tx *Tx) (err error) {
			before := db.WriteStatements()
			claimed, err = tx.ClaimSendRecord(&rec)
			stmts = db.WriteStatements() - before
			return err
		})
		return claimed, stmts
	}
	if ok, n := claim(); !ok || n != 1 {
		t.Fatalf("claim of a new pair: %v in %d statements, want true in 1", ok, n)
	}
	if ok, n := claim(); ok || n != 2 {
		t.Fatalf("claim of a retry: %v in %d statements, want false in 2", ok, n)
	}
}

// spillRows counts the dedup records waiting in the spill.
func spillRows(t *testing.T, db *DB) int {
	t.Helper()
	var n int
	if err := db.r.QueryRow(`SELECT COUNT(*) FROM send_record_spill`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSendRecordSpill: when another pair's record holds a pair's key (a
// hash collision, made here by hand), the pair's record waits in the
// spill and answers from there; when retention deletes the other record,
// the pair's record takes the key, still answers and still refuses a
// second claim, and it is kept a whole window from then on, even when
// the pass that freed the key stopped at its limit with the old mark
// left (its id is past every mark).
func TestSendRecordSpill(t *testing.T) {
	db, _ := openTest(t)
	mustWrite(t, db, func(tx *Tx) error {
		_, err := tx.exec(`INSERT INTO send_records(key, sender, message_id, conv_id, conv_seq, epoch, created_ms) VALUES (?, 'u@x/z', 'other', 'o@x', 9, 9, 9)`,
			sendKey("u@x/a", "m1"))
		return err
	})
	rec := SendRecord{Sender: "u@x/a", MessageID: "m1", ConvID: "c@x", ConvSeq: 1, Epoch: 2, CreatedMs: 3}
	claim := func() (ok bool) {
		mustWrite(t, db, func(tx *Tx) (err error) { ok, err = tx.ClaimSendRecord(&rec); return err })
		return ok
	}
	answers := func(when string) {
		t.Helper()
		if r, err := recordOf(t, db, rec.Sender, rec.MessageID); err != nil || *r != rec {
			t.Fatalf("%s: record %+v, %v; want %+v", when, r, err, rec)
		}
		if claim() {
			t.Fatalf("%s: a second claim of the pair succeeded", when)
		}
	}
	if !claim() {
		t.Fatal("claim under another pair's key refused")
	}
	if n := spillRows(t, db); n != 1 {
		t.Fatalf("spilled records: %d, want 1", n)
	}
	answers("spilled")

	const window = 1000
	retain := func(now int64, limit int) int64 {
		var d int64
		mustWrite(t, db, func(tx *Tx) (err error) { d, err = tx.DeleteSendRecords(now, now-window, limit); return err })
		return d
	}
	if d := retain(100, 1); d != 0 { // marks the other record (id 1) at 100
		t.Fatalf("first pass deleted %d", d)
	}
	// The limit stops the pass at the other record: the mark at 100 stays.
	if d := retain(1101, 1); d != 1 {
		t.Fatalf("second pass deleted %d, want the other record", d)
	}
	if n := spillRows(t, db); n != 0 {
		t.Fatalf("spilled records after the key was freed: %d, want 0", n)
	}
	if r, err := recordOf(t, db, "u@x/z", "other"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the other record after its retention: %+v, %v", r, err)
	}
	answers("moved into the key")
	if d := retain(1102, 1); d != 0 { // the mark at 100 must not cover the moved record
		t.Fatalf("pass under the old mark deleted %d, want 0 (the moved record kept its window)", d)
	}
	answers("after a pass under the old mark")
	if d := retain(2101, 10); d != 0 { // the mark left at 1102 is not older than 1101
		t.Fatalf("pass within the moved record's window deleted %d", d)
	}
	if d := retain(2103, 10); d != 1 {
		t.Fatalf("pass after the moved record's window deleted %d, want 1", d)
	}
	if _, err := recordOf(t, db, rec.Sender, rec.MessageID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the moved record after its window: %v", err)
	}
}

// TestSendRecordsMigratedUnique: a schema-16 database whose dedup records
// include two pairs under one key (a hash collision, made by hand), opened
// by this code (migration 0017): every record still answers and refuses a
// second claim, the younger of the two waits in the spill, the key is
// unique, and when retention deletes the older one the younger takes its
// key.
func TestSendRecordsMigratedUnique(t *testing.T) {
	ctx := context.Background()
	raw, path := rawAtSchema(t, 16)
	// The first record is another pair's under the third pair's key.
	recs := []SendRecord{
		{Sender: "u@x/z", MessageID: "other", ConvID: "o@x", ConvSeq: 9, Epoch: 9, CreatedMs: 9},
		{Sender: "u@x/a1", MessageID: "m2", ConvID: "c@x", ConvSeq: 2, Epoch: 1, CreatedMs: 2000},
		{Sender: "u@x/b1", MessageID: "m9", ConvID: "c@x", ConvSeq: 3, Epoch: 1, CreatedMs: 3000},
	}
	shared := sendKey(recs[2].Sender, recs[2].MessageID)
	for i, r := range recs {
		key := sendKey(r.Sender, r.MessageID)
		if i == 0 {
			key = shared
		}
		if _, err := raw.ExecContext(ctx, `INSERT INTO send_records(key, sender, message_id, conv_id, conv_seq, epoch, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			key, r.Sender, r.MessageID, r.ConvID, r.ConvSeq, r.Epoch, r.CreatedMs); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := raw.ExecContext(ctx, `INSERT INTO send_record_marks(upto, at_ms) VALUES (3, 100)`); err != nil {
		t.Fatal(err)
	}
	db := openMigrated(t, raw, path)

	check := func(when string, live []SendRecord) {
		t.Helper()
		for _, r := range live {
			if got, err := recordOf(t, db, r.Sender, r.MessageID); err != nil || *got != r {
				t.Fatalf("%s: record of %s %s: %+v, %v; want %+v", when, r.Sender, r.MessageID, got, err, r)
			}
			mustWrite(t, db, func(tx *Tx) error {
				if ok, err := tx.ClaimSendRecord(&r); err != nil || ok {
					return fmt.Errorf("%s: second claim of %s %s: %v %v", when, r.Sender, r.MessageID, ok, err)
				}
				return nil
			})
		}
	}
	check("migrated", recs[1:])
	if n := spillRows(t, db); n != 1 {
		t.Fatalf("spilled records after the migration: %d, want 1", n)
	}
	if _, err := db.w.ExecContext(ctx, `INSERT INTO send_records(key, sender, message_id, conv_id, conv_seq, epoch, created_ms) VALUES (?, 'u@x/z', 'z', 'c@x', 1, 1, 1)`, shared); !isUnique(err) {
		t.Fatalf("a second record under one key after the migration: %v, want a UNIQUE violation", err)
	}
	var n int64
	mustWrite(t, db, func(tx *Tx) (err error) { n, err = tx.DeleteSendRecords(5000, 200, 1); return err })
	if n != 1 {
		t.Fatalf("retention deleted %d, want the oldest record", n)
	}
	var left int
	if err := db.r.QueryRow(`SELECT COUNT(*) FROM send_records WHERE sender = 'u@x/z'`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("the oldest record after its retention: %d left, %v", left, err)
	}
	check("the spilled record moved", recs[1:])
	if n := spillRows(t, db); n != 0 {
		t.Fatalf("spilled records after the key was freed: %d", n)
	}
}
