package storage

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSnapshotConsistentWhileWriting copies a database while the writer
// keeps committing: writes finish during the copy (the writer is not
// blocked), the copy holds exactly what was committed when it began, and
// it lists the media complete then.
func TestSnapshotConsistentWhileWriting(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	ids := fixture(t, db, "c", 2)
	var seq uint64
	for range 30 { // 3000 messages, about 12 MB: several backup steps
		mustWrite(t, db, func(tx *Tx) error {
			for range 100 {
				seq++
				if _, err := appendMsg(tx, "c@x", ids[0], seq, strings.Repeat("x", 4000)+fmt.Sprint(seq)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	mustWrite(t, db, func(tx *Tx) error {
		u, err := tx.UserByName("u-c")
		if err != nil {
			return err
		}
		for i, done := range []bool{true, false} {
			m := &Media{UploadID: fmt.Sprint("up", i), MediaID: fmt.Sprint("media", i), UserID: u.ID, DeviceID: ids[0], TotalSize: 10, CreatedMs: 1}
			if err := tx.InsertMedia(m); err != nil {
				return err
			}
			if done {
				if err := tx.CompleteMedia(m.UploadID, make([]byte, 32), 2); err != nil {
					return err
				}
			}
		}
		return nil
	})
	atStart := seq
	dest := filepath.Join(t.TempDir(), "copy.db")
	steps, during := 0, 0
	info, err := db.Snapshot(ctx, dest, func(done, total int) {
		steps++
		// Commits go on while the copy holds its read transaction.
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := db.Write(wctx, func(tx *Tx) error {
			seq++
			_, err := appendMsg(tx, "c@x", ids[0], seq, "during")
			return err
		}); err != nil {
			t.Errorf("write during the snapshot: %v", err)
		}
		during++
	})
	if err != nil {
		t.Fatal(err)
	}
	if steps < 2 || during != steps {
		t.Fatalf("%d steps, %d writes during them: want several", steps, during)
	}
	if len(info.MediaIDs) != 1 || info.MediaIDs[0] != "media0" || info.Pages == 0 {
		t.Fatalf("snapshot info %+v", info)
	}
	cp, err := Open(dest, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	var head, last uint64
	if err := cp.Read(ctx, func(tx *Tx) (err error) {
		head, _, err = tx.MailboxState(ids[1])
		if err != nil {
			return err
		}
		last, err = tx.LastMailboxEntry(ids[1])
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if head != atStart || last != atStart {
		t.Fatalf("copy has head %d, last entry %d; %d were committed when it began (%d now)", head, last, atStart, seq)
	}
	if _, err := db.Snapshot(ctx, dest, nil); err == nil {
		t.Fatal("a snapshot over an existing file succeeded")
	}
}

// TestSkipRestoredSequences: after a restore, mailbox heads and the log
// sequences of conversations hubbed here move past the gap; conversations
// hubbed elsewhere, and what devices acknowledged, stay.
func TestSkipRestoredSequences(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	ids := fixture(t, db, "c", 2)
	mustWrite(t, db, func(tx *Tx) error {
		for seq := uint64(1); seq <= 3; seq++ {
			if _, err := appendMsg(tx, "c@x", ids[0], seq, "m"); err != nil {
				return err
			}
		}
		if err := tx.Ack(ids[1], 2); err != nil {
			return err
		}
		return tx.InsertConversation(&Conversation{ID: "r@y", Kind: 2, Creator: "v@y/d", LastSeq: 7, CreatedMs: 1}, nil, nil)
	})
	mustWrite(t, db, func(tx *Tx) error { return tx.SkipRestoredSequences("x", RestoreGap) })
	if err := db.Read(ctx, func(tx *Tx) error {
		head, acked, err := tx.MailboxState(ids[1])
		if err != nil {
			return err
		}
		last, err := tx.LastMailboxEntry(ids[1])
		if err != nil {
			return err
		}
		if head != 3+RestoreGap || acked != 2 || last != 3 {
			return fmt.Errorf("head %d acked %d last %d", head, acked, last)
		}
		for id, want := range map[string]uint64{"c@x": 3 + RestoreGap, "r@y": 7} {
			c, err := tx.Conversation(id)
			if err != nil {
				return err
			}
			if c.LastSeq != want {
				return fmt.Errorf("%s last_seq %d, want %d", id, c.LastSeq, want)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The next message is numbered past the gap.
	mustWrite(t, db, func(tx *Tx) error {
		heads, err := appendMsg(tx, "c@x", ids[0], 4+RestoreGap, "after")
		if err == nil && (len(heads) != 1 || heads[0].Seq != 4+RestoreGap) {
			err = fmt.Errorf("heads %+v", heads)
		}
		return err
	})
}

// TestDropSingleUseKeyPackages: after a restore only last-resort packages
// are claimed.
func TestDropSingleUseKeyPackages(t *testing.T) {
	db, _ := openTest(t)
	ids := fixture(t, db, "c", 1)
	mustWrite(t, db, func(tx *Tx) error {
		return tx.AddKeyPackages(ids[0], [][]byte{[]byte("kp1"), []byte("kp2")}, []byte("last"), 1)
	})
	mustWrite(t, db, func(tx *Tx) error { return tx.DropSingleUseKeyPackages() })
	for range 2 {
		mustWrite(t, db, func(tx *Tx) error {
			pkg, last, err := tx.ClaimKeyPackage(ids[0])
			if err == nil && (!last || string(pkg) != "last") {
				err = fmt.Errorf("claimed %q (last resort %v)", pkg, last)
			}
			return err
		})
	}
}
