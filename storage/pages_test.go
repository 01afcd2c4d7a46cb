package storage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// sendLikeHub does in tx what the hub's Accept does for an application
// message (homeserver/hub): the conversation with its recipients, the
// dedup claim, the log entry, the fan-out and the conversation's advance.
func sendLikeHub(tx *Tx, conv, senderDev, msgID string, payload []byte, nowMs int64) error {
	sender := "u@x/" + senderDev
	v, err := tx.ConversationForSend(conv, sender, senderDev, false)
	if err != nil {
		return err
	}
	seq := v.Conv.LastSeq + 1
	rec := &SendRecord{Sender: sender, MessageID: msgID, ConvID: conv, ConvSeq: seq, Epoch: v.Conv.Epoch, CreatedMs: nowMs}
	if ok, err := tx.ClaimSendRecord(rec); err != nil || !ok {
		return fmt.Errorf("claim %s: %v %v", msgID, ok, err)
	}
	e := &LogEntry{ConvID: conv, Seq: seq, Sender: sender, MessageID: msgID, Kind: 1, Epoch: v.Conv.Epoch,
		Payload: payload, CreatedMs: nowMs, Refs: len(v.Recipients)}
	if err := tx.QueueLog(e); err != nil {
		return err
	}
	if _, err := tx.FanOutTo(conv, seq, senderDev, v.Recipients, nowMs); err != nil {
		return err
	}
	return tx.AdvanceConversation(conv, v.Conv.Epoch, nil, seq, false)
}

// walFrames returns the number of frames in db's WAL file. The writer's
// automatic checkpoints must be off (walPagesSetup).
func walFrames(tb testing.TB, path string) int64 {
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		tb.Fatal(err)
	}
	if fi.Size() < 32 {
		return 0
	}
	return (fi.Size() - 32) / (24 + 4096)
}

// BenchmarkSendPages measures the WAL pages one writer transaction of
// 1, 2 or 8 Sends writes (what its COMMIT costs follows them): 100
// two-device conversations, 300-byte payloads, Sends spread over the
// conversations, with 20,000 messages logged before. pages/tx is the
// figure; the time per op includes the fsync.
func BenchmarkSendPages(b *testing.B) {
	for _, perTx := range []int{1, 2, 8} {
		b.Run(fmt.Sprint("sends=", perTx), func(b *testing.B) {
			db, path, send := walPagesDB(b, func(db *DB) func(*Tx) error {
				return oneToOneSends(b, db, 100, func(n int) int { return n % 2 })
			})
			before := walFrames(b, path)
			b.ResetTimer()
			for range b.N {
				sendsPerTx(b, db, send, perTx)
			}
			b.StopTimer()
			b.ReportMetric(float64(walFrames(b, path)-before)/float64(b.N), "pages/tx")
		})
	}
}

// walPagesDB opens a database without a checkpointer beside the writer
// (it would rewind the WAL the count is taken from), writes 20,000 Sends
// of sends(db) in transactions of 100, then copies them into the database
// file and empties the WAL: what a measured transaction writes is then all
// the WAL holds. The database closes with the benchmark.
func walPagesDB(b *testing.B, sends func(*DB) func(*Tx) error) (db *DB, path string, send func(*Tx) error) {
	path = filepath.Join(b.TempDir(), "hearth.db")
	db, err := Open(path, Options{CheckpointInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	send = sends(db)
	for k := 0; k < 20000; k += 100 {
		sendsPerTx(b, db, send, 100)
	}
	ctx := context.Background()
	if _, err := db.w.ExecContext(ctx, `PRAGMA wal_autocheckpoint = 0`); err != nil {
		b.Fatal(err)
	}
	if _, err := db.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		b.Fatal(err)
	}
	return db, path, send
}

// sendsPerTx writes perTx Sends of send in one transaction.
func sendsPerTx(b *testing.B, db *DB, send func(*Tx) error, perTx int) {
	mustWrite(b, db, func(tx *Tx) error {
		for range perTx {
			if err := send(tx); err != nil {
				return err
			}
		}
		return nil
	})
}

// TestSendPagesWithGroupInfo: a conversation's GroupInfo (about 4 KB for
// a 1:1 conversation of `hearth bench pairs`) adds no page to a Send: a
// transaction of one Send to each of eight conversations writes as many
// WAL pages as without GroupInfos, give or take one (migration 0018; with
// the GroupInfo in the conversations row it wrote one page more per
// conversation).
func TestSendPagesWithGroupInfo(t *testing.T) {
	frames := func(groupInfo int) int64 {
		path := filepath.Join(t.TempDir(), "hearth.db")
		db, err := Open(path, Options{CheckpointInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		const convs = 8
		ids := make([][]string, convs)
		for i := range ids {
			ids[i] = fixture(t, db, fmt.Sprint("p", i), 2)
			if groupInfo > 0 {
				gi := make([]byte, groupInfo)
				for k := range gi {
					gi[k] = byte(i + k)
				}
				mustWrite(t, db, func(tx *Tx) error { return tx.AdvanceConversation(fmt.Sprintf("p%d@x", i), 1, gi, 0, true) })
			}
		}
		// A first Send to each, so that the measured ones find every
		// B-tree as a later Send does.
		send := func(round int) {
			mustWrite(t, db, func(tx *Tx) error {
				for i := range convs {
					if err := sendLikeHub(tx, fmt.Sprintf("p%d@x", i), ids[i][0], fmt.Sprint("m", round, "-", i), make([]byte, 300), int64(round)); err != nil {
						return err
					}
				}
				return nil
			})
		}
		send(0)
		ctx := context.Background()
		if _, err := db.w.ExecContext(ctx, `PRAGMA wal_autocheckpoint = 0`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			t.Fatal(err)
		}
		send(1)
		return walFrames(t, path)
	}
	without, with := frames(0), frames(4233)
	if with > without+1 {
		t.Fatalf("eight Sends wrote %d WAL pages to conversations with 4,233-byte GroupInfos, %d without", with, without)
	}
	t.Logf("eight Sends: %d WAL pages with GroupInfos, %d without", with, without)
}
