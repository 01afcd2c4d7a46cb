package storage

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// logSeqs lists the log entries of conversation conv.
func logSeqs(t testing.TB, db *DB, conv string) []uint64 {
	t.Helper()
	var seqs []uint64
	rows, err := db.r.Query(`SELECT seq FROM conversation_log WHERE conv_id = ? ORDER BY seq`, conv)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var s uint64
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, s)
	}
	return seqs
}

// checkRefs fails unless every log entry counts exactly the mailbox rows
// that refer to it and every mailbox row refers to an entry in the log.
func checkRefs(t testing.TB, db *DB) {
	t.Helper()
	var bad string
	err := db.r.QueryRow(`SELECT COALESCE(group_concat(conv_id || '#' || seq || ' refs ' || refs || ' rows ' || n, '; '), '') FROM
		(SELECT l.conv_id, l.seq, l.refs, (SELECT COUNT(*) FROM mailbox m WHERE m.conv_id = l.conv_id AND m.conv_seq = l.seq) AS n
		 FROM conversation_log l) WHERE refs <> n`).Scan(&bad)
	if err != nil || bad != "" {
		t.Fatalf("log reference counts: %s (%v)", bad, err)
	}
	err = db.r.QueryRow(`SELECT COALESCE(group_concat(m.device_id || ':' || m.seq, ' '), '') FROM mailbox m
		WHERE NOT EXISTS (SELECT 1 FROM conversation_log l WHERE l.conv_id = m.conv_id AND l.seq = m.conv_seq)`).Scan(&bad)
	if err != nil || bad != "" {
		t.Fatalf("mailbox rows whose log entry was deleted: %s (%v)", bad, err)
	}
}

// retentionPass is the log part of a homeserver retention pass:
// acknowledged mailbox rows older than cutoffMs, then the log entries
// nothing refers to any more, limit at a time.
func retentionPass(t testing.TB, db *DB, cutoffMs int64, limit int) {
	t.Helper()
	for more := true; more; {
		mustWrite(t, db, func(tx *Tx) error {
			n, err := tx.DeleteAcked(cutoffMs, limit)
			more = n == int64(limit)
			return err
		})
	}
	for next, more := int64(0), true; more; {
		mustWrite(t, db, func(tx *Tx) (err error) {
			_, next, err = tx.DeleteUnreferencedLog(cutoffMs, next, limit)
			more = next != 0
			return err
		})
	}
}

func sendAt(t testing.TB, db *DB, conv, dev string, nowMs int64) {
	t.Helper()
	mustWrite(t, db, func(tx *Tx) error {
		return sendLikeHub(tx, conv, dev, fmt.Sprintf("%s-%d-%d", conv, nowMs, rand.Int()), []byte("x"), nowMs)
	})
}

func seqRange(a, b uint64) []uint64 {
	var s []uint64
	for i := a; i <= b; i++ {
		s = append(s, i)
	}
	return s
}

// TestLogRetention: a log entry goes once it is older than the cut-off
// and no mailbox row refers to it, whichever way its rows went
// (retention of acknowledged rows, a revoked device, a deleted user), and
// not before; a pass does not stop short of the cut-off however many
// still referenced entries it passes, nor at an entry logged a little
// out of time order (z's and s's, logged after r's 10).
func TestLogRetention(t *testing.T) {
	db, _ := openTest(t)
	r := fixture(t, db, "r", 3) // r0 sends to r1 and r2
	s := fixture(t, db, "s", 2) // s0 sends to s1
	z := fixture(t, db, "z", 1) // z0 alone: its entries have no mailbox row
	for ms := int64(1); ms <= 10; ms++ {
		sendAt(t, db, "r@x", r[0], ms)
	}
	sendAt(t, db, "z@x", z[0], 2)
	sendAt(t, db, "s@x", s[0], 3)
	sendAt(t, db, "s@x", s[0], 4)
	checkRefs(t, db)
	mustWrite(t, db, func(tx *Tx) error {
		if err := tx.Ack(r[1], 10); err != nil {
			return err
		}
		return tx.Ack(r[2], 5)
	})
	expect := func(when, conv string, want []uint64) {
		t.Helper()
		checkRefs(t, db)
		if got := logSeqs(t, db, conv); !slices.Equal(got, want) {
			t.Fatalf("%s: %s has log entries %v, want %v", when, conv, got, want)
		}
	}

	retentionPass(t, db, 8, 2000)
	expect("first pass", "r@x", seqRange(6, 10)) // 6, 7 unacknowledged by r2; 8-10 young
	expect("first pass", "z@x", nil)             // no mailbox row, old
	expect("first pass", "s@x", []uint64{1, 2})  // s1 has not acknowledged

	// The user goes with its devices and mailboxes (foreign keys): its
	// entries, logged after the first pass's mark (out of time order,
	// within LogOrderSlack), go in the next pass.
	var sUser int64
	if err := db.r.QueryRow(`SELECT user_id FROM devices WHERE id = ?`, s[0]).Scan(&sUser); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, db, func(tx *Tx) error { return tx.DeleteUser(sUser) })
	expect("user deleted", "s@x", []uint64{1, 2})

	// r2 acknowledges 6 and 7: the entries the first pass passed go with
	// their last rows, at once.
	mustWrite(t, db, func(tx *Tx) error { return tx.Ack(r[2], 7) })
	expect("acknowledged", "r@x", seqRange(6, 10))
	mustWrite(t, db, func(tx *Tx) error { _, err := tx.DeleteAcked(8, 2000); return err })
	expect("acknowledged rows deleted", "r@x", seqRange(8, 10))
	retentionPass(t, db, 8, 2000)
	expect("second pass", "r@x", seqRange(8, 10))
	expect("second pass", "s@x", nil)

	// r2 revoked: its rows go; r1's (acknowledged, young) keep 8-10.
	mustWrite(t, db, func(tx *Tx) error { return tx.RevokeDevice(r[2], 11) })
	expect("r2 revoked", "r@x", seqRange(8, 10))
	retentionPass(t, db, 10, 2000)
	expect("third pass", "r@x", []uint64{10})

	// A longer retention (cut-off back at 5): nothing younger goes.
	for ms := int64(11); ms <= 20; ms++ {
		sendAt(t, db, "r@x", r[0], ms)
	}
	mustWrite(t, db, func(tx *Tx) error { return tx.Ack(r[1], 20) })
	retentionPass(t, db, 5, 2000)
	expect("longer retention", "r@x", seqRange(10, 20))
	// Passes of 3 entries at a time reach the cut-off.
	retentionPass(t, db, 18, 3)
	expect("passes of 3", "r@x", seqRange(18, 20))
	// Nothing refers to 18-20 any more, but they are young.
	mustWrite(t, db, func(tx *Tx) error { return tx.RevokeDevice(r[1], 21) })
	expect("r1 revoked", "r@x", seqRange(18, 20))
	retentionPass(t, db, 20, 2000)
	expect("last pass", "r@x", []uint64{20})
}

// TestLogRetentionRandom checks, after each of many retention passes over
// random Sends and acknowledgements, the rule that retention keeps: no
// entry older than the cut-off that nothing refers to is left; no entry
// younger, and none a mailbox row refers to, is gone.
func TestLogRetentionRandom(t *testing.T) {
	db, _ := openTest(t)
	rng := rand.New(rand.NewPCG(1, 2))
	convs := map[string][]string{"a@x": fixture(t, db, "a", 4), "b@x": fixture(t, db, "b", 2), "c@x": fixture(t, db, "c", 1)}
	names := []string{"a@x", "b@x", "c@x"}
	logged := map[string]int64{} // "conv#seq" -> created
	var devices []string
	for _, ids := range convs {
		devices = append(devices, ids...)
	}
	slices.Sort(devices)
	const keep = 6
	for now := int64(1); now <= 300; now++ {
		for k := rng.IntN(4); k > 0; k-- {
			conv := names[rng.IntN(len(names))]
			ids := convs[conv]
			sendAt(t, db, conv, ids[rng.IntN(len(ids))], now)
		}
		if rng.IntN(3) == 0 {
			dev := devices[rng.IntN(len(devices))]
			mustWrite(t, db, func(tx *Tx) error {
				head, acked, err := tx.MailboxState(dev)
				if err != nil || head == acked {
					return err
				}
				return tx.Ack(dev, acked+1+uint64(rng.IntN(int(head-acked))))
			})
		}
		if now%5 != 0 {
			continue
		}
		rows, err := db.r.Query(`SELECT conv_id, seq, created_ms FROM conversation_log`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var c string
			var seq, created int64
			rows.Scan(&c, &seq, &created)
			logged[fmt.Sprint(c, "#", seq)] = created
		}
		rows.Close()
		cutoff := now - keep
		retentionPass(t, db, cutoff, 1+rng.IntN(8))
		checkRefs(t, db)
		var stale string
		if err := db.r.QueryRow(`SELECT COALESCE(group_concat(conv_id || '#' || seq, ' '), '') FROM conversation_log l
			WHERE created_ms < ? AND NOT EXISTS (SELECT 1 FROM mailbox m WHERE m.conv_id = l.conv_id AND m.conv_seq = l.seq)`,
			cutoff).Scan(&stale); err != nil || stale != "" {
			t.Fatalf("at %d: old unreferenced entries kept: %s (%v)", now, stale, err)
		}
		left := map[string]bool{}
		for _, c := range names {
			for _, s := range logSeqs(t, db, c) {
				left[fmt.Sprint(c, "#", s)] = true
			}
		}
		var early []string
		for k, created := range logged {
			if created >= cutoff && !left[k] {
				early = append(early, k)
			}
		}
		if len(early) > 0 {
			t.Fatalf("at %d (cut-off %d): young entries deleted: %s", now, cutoff, strings.Join(early, " "))
		}
	}
	var n int
	db.r.QueryRow(`SELECT COUNT(*) FROM conversation_log`).Scan(&n)
	if len(logged) < 300 || n == 0 || n == len(logged) {
		t.Fatalf("%d entries logged, %d left: the test did not exercise retention", len(logged), n)
	}
}

// BenchmarkLogRetentionPass: one retention pass over a log of 200,000
// entries, all older than the cut-off, of which the first 199,000 are
// still referenced (by a device that never acknowledges) and were passed
// by the pass before, and the last 1,000 are not referenced any more.
// The pass deletes those 1,000 (in a transaction rolled back, so that
// each op starts from the same state). "old" runs the statement retention
// used before migration 0015, with the two indexes it needed.
func BenchmarkLogRetentionPass(b *testing.B) {
	db, _ := openTest(b)
	ids := fixture(b, db, "q", 3) // q0 sends to q1 and q2
	const total, fresh = 200000, 1000
	payload := make([]byte, 200)
	ms := int64(0)
	for k := 0; k < total; k += 1000 {
		mustWrite(b, db, func(tx *Tx) error {
			for j := 0; j < 1000; j++ {
				ms++
				if err := sendLikeHub(tx, "q@x", ids[0], fmt.Sprint("m", ms), payload, ms); err != nil {
					return err
				}
			}
			return nil
		})
	}
	// Their rows gone (acknowledged and deleted): all of q1's, q2's of
	// the last 1,000 entries. The last pass went up to entry 199,000.
	mustWrite(b, db, func(tx *Tx) error {
		if _, err := tx.exec(`DELETE FROM mailbox WHERE device_id = ? OR (device_id = ? AND seq > ?)`, ids[1], ids[2], total-fresh); err != nil {
			return err
		}
		_, err := tx.exec(`UPDATE retention_marks SET log_id = (SELECT id FROM conversation_log WHERE seq = ?), log_cutoff_ms = ?`,
			total-fresh, total-fresh+1)
		return err
	})
	ctx := context.Background()
	errRollBack := fmt.Errorf("roll back")
	run := func(b *testing.B, pass func(tx *Tx) (int64, error)) {
		for i := 0; i < b.N; i++ {
			var deleted int64
			err := db.Write(ctx, func(tx *Tx) (err error) {
				if deleted, err = pass(tx); err != nil {
					return err
				}
				return errRollBack
			})
			if err != errRollBack || deleted != fresh {
				b.Fatalf("deleted %d, want %d (%v)", deleted, fresh, err)
			}
		}
	}
	b.Run("new", func(b *testing.B) {
		run(b, func(tx *Tx) (int64, error) {
			var deleted, next int64
			for more := true; more; more = next != 0 {
				n, nx, err := tx.DeleteUnreferencedLog(1<<40, next, 2000)
				if err != nil {
					return 0, err
				}
				deleted, next = deleted+n, nx
			}
			return deleted, nil
		})
	})
	b.Run("old", func(b *testing.B) {
		mustWrite(b, db, func(tx *Tx) error {
			_, err := tx.exec(`CREATE INDEX IF NOT EXISTS conversation_log_created ON conversation_log(created_ms)`)
			if err == nil {
				_, err = tx.exec(`CREATE INDEX IF NOT EXISTS mailbox_log ON mailbox(conv_id, conv_seq)`)
			}
			return err
		})
		run(b, func(tx *Tx) (int64, error) {
			var total int64
			for {
				res, err := tx.exec(`DELETE FROM conversation_log WHERE id IN (
					SELECT l.id FROM conversation_log l WHERE l.created_ms < ? AND NOT EXISTS
					(SELECT 1 FROM mailbox m WHERE m.conv_id = l.conv_id AND m.conv_seq = l.seq) LIMIT ?)`, 1<<40, 2000)
				n, err := rowsAffected("old", res, err)
				if err != nil {
					return 0, err
				}
				total += n
				if n < 2000 {
					return total, nil
				}
			}
		})
	})
}

// TestLogRefsCounted: every way a mailbox row is added counts it on its
// log entry (a commit's fan-out and its welcome, a message's fan-out to a
// small and to a large conversation, a follower's delivery, a
// delivery-failed notice), and migration 0015's count of the rows
// already there agrees.
func TestLogRefsCounted(t *testing.T) {
	db, _ := openTest(t)
	small := fixture(t, db, "k", 3)
	large := fixture(t, db, "l", maxRowsPerInsert+3) // FanOutTo inserts these rows at once
	joiner := "k-new"
	mustWrite(t, db, func(tx *Tx) error {
		u, err := tx.UserByName("u-k")
		if err != nil {
			return err
		}
		if err := tx.InsertDevice(&Device{ID: joiner, UserID: u.ID, Name: "d", Status: DeviceActive, CreatedMs: 1}, nil); err != nil {
			return err
		}
		if err := tx.AppendLog(&LogEntry{ConvID: "k@x", Seq: 1, Sender: "u@x/" + small[0], MessageID: "c1", Kind: 2,
			Payload: []byte("commit"), Welcome: []byte("welcome"), CreatedMs: 1}); err != nil {
			return err
		}
		if _, err := tx.FanOut("k@x", 1, small[0], false, 0, 1); err != nil {
			return err
		}
		if err := tx.AddMember("k@x", Member{Address: "u@x/" + joiner, DeviceID: joiner}, 1); err != nil {
			return err
		}
		if _, err := tx.FanOut("k@x", 1, small[0], true, 1, 1); err != nil {
			return err
		}
		return tx.AdvanceConversation("k@x", 1, nil, 1, true)
	})
	sendAt(t, db, "k@x", small[1], 2)
	sendAt(t, db, "l@x", large[0], 2)
	sendAt(t, db, "l@x", large[1], 3)
	mustWrite(t, db, func(tx *Tx) error {
		// A follower's delivery and a notice about the message.
		if err := tx.AppendLog(&LogEntry{ConvID: "k@x", Seq: 3, Sender: "r@other/D", MessageID: "f1", Kind: 1,
			Payload: []byte("from afar"), CreatedMs: 3}); err != nil {
			return err
		}
		for _, d := range small {
			if _, err := tx.AppendMailbox(d, "k@x", 3, false, 3); err != nil {
				return err
			}
		}
		_, err := tx.AppendMailboxNotice(small[0], "k@x", 2, "m2", "u@x/"+small[1], "other", 4)
		return err
	})
	checkRefs(t, db)
	var refs []int
	rows, err := db.r.Query(`SELECT refs FROM conversation_log ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n int
		rows.Scan(&n)
		refs = append(refs, n)
	}
	rows.Close()
	// k#1: 2 members and the joiner's welcome; k#2: 3 devices and the
	// notice; l#1, l#2: all but the sender; k#3: 3 deliveries.
	if want := []int{3, 4, len(large) - 1, len(large) - 1, 3}; !slices.Equal(refs, want) {
		t.Fatalf("refs %v, want %v", refs, want)
	}

	// Migration 0015 counts the rows of a database that had no counts.
	mig, err := migrationFS.ReadFile("migrations/0015_log_refs.sql")
	if err != nil {
		t.Fatal(err)
	}
	count, _, _ := strings.Cut(string(mig)[strings.Index(string(mig), "UPDATE conversation_log SET refs"):], ";")
	mustWrite(t, db, func(tx *Tx) error {
		if _, err := tx.exec(`UPDATE conversation_log SET refs = 0`); err != nil {
			return err
		}
		_, err := tx.exec(count)
		return err
	})
	checkRefs(t, db)
}
