package storage

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// fixture creates one user with n active devices and a conversation with
// all of them as members; it returns the device ids.
func fixture(t testing.TB, db *DB, conv string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	mustWrite(t, db, func(tx *Tx) error {
		u := &User{Name: "u-" + conv, PassHash: "h", CreatedMs: 1}
		if err := tx.InsertUser(u); err != nil {
			return err
		}
		var members []Member
		for i := range ids {
			ids[i] = fmt.Sprintf("%s-d%04d", conv, i)
			if err := tx.InsertDevice(&Device{ID: ids[i], UserID: u.ID, Name: "d", Status: DeviceActive, CreatedMs: 1}, nil); err != nil {
				return err
			}
			members = append(members, Member{Address: "u@x/" + ids[i], DeviceID: ids[i]})
		}
		return tx.InsertConversation(&Conversation{ID: conv + "@x", Kind: 2, Creator: members[0].Address, CreatedMs: 1}, members, nil)
	})
	return ids
}

// appendMsg logs one message from devices[0] and fans it out.
func appendMsg(tx *Tx, conv string, sender string, seq uint64, body string) ([]Head, error) {
	if err := tx.AppendLog(&LogEntry{ConvID: conv, Seq: seq, Sender: "u@x/" + sender, MessageID: fmt.Sprint("m", seq),
		Kind: 1, Payload: []byte(body), CreatedMs: int64(seq)}); err != nil {
		return nil, err
	}
	if err := tx.AdvanceConversation(conv, 0, nil, seq, false); err != nil {
		return nil, err
	}
	return tx.FanOut(conv, seq, sender, false, 0, int64(seq))
}

func TestMailboxSeqsSurviveReopen(t *testing.T) {
	db, path := openTest(t)
	ctx := context.Background()
	ids := fixture(t, db, "c", 3)
	for seq := uint64(1); seq <= 5; seq++ {
		mustWrite(t, db, func(tx *Tx) error {
			heads, err := appendMsg(tx, "c@x", ids[0], seq, fmt.Sprint("body", seq))
			if err != nil {
				return err
			}
			if len(heads) != 2 {
				return fmt.Errorf("fan-out to %d devices, want 2 (sender excluded)", len(heads))
			}
			for _, h := range heads {
				if h.Seq != seq {
					return fmt.Errorf("device %s got seq %d, want %d", h.DeviceID, h.Seq, seq)
				}
			}
			return nil
		})
	}
	mustWrite(t, db, func(tx *Tx) error { return tx.Ack(ids[1], 5) })
	// Retention deletes acked entries, but the head must not go back.
	mustWrite(t, db, func(tx *Tx) error {
		n, err := tx.DeleteAcked(1<<62, 1000)
		if err == nil && n != 5 {
			err = fmt.Errorf("deleted %d acked entries, want 5", n)
		}
		return err
	})
	db.Close()

	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mustWrite(t, db, func(tx *Tx) error {
		heads, err := appendMsg(tx, "c@x", ids[0], 6, "body6")
		if err != nil {
			return err
		}
		for _, h := range heads {
			if h.Seq != 6 {
				return fmt.Errorf("after reopen device %s got seq %d, want 6", h.DeviceID, h.Seq)
			}
		}
		return nil
	})
	err = db.Read(ctx, func(tx *Tx) error {
		es, err := tx.Entries(ids[2], 0, 100)
		if err != nil {
			return err
		}
		if len(es) != 6 {
			return fmt.Errorf("device 2 has %d entries, want 6", len(es))
		}
		for i, e := range es {
			if e.Seq != uint64(i+1) || e.ConvSeq != uint64(i+1) || string(e.Payload) != fmt.Sprint("body", i+1) {
				return fmt.Errorf("entry %d: %+v", i, e)
			}
		}
		es, err = tx.Entries(ids[1], 0, 100)
		if err != nil {
			return err
		}
		if len(es) != 1 || es[0].Seq != 6 {
			return fmt.Errorf("device 1 after retention: %d entries", len(es))
		}
		head, acked, err := tx.MailboxState(ids[1])
		if err != nil || head != 6 || acked != 5 {
			return fmt.Errorf("state head=%d acked=%d err=%v", head, acked, err)
		}
		hist, err := tx.History(ids[2], "c@x", 0, 2)
		if err != nil || len(hist) != 2 || hist[0].Seq != 6 || hist[1].Seq != 5 {
			return fmt.Errorf("history %v %v", hist, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAckRules(t *testing.T) {
	db, _ := openTest(t)
	ids := fixture(t, db, "c", 2)
	mustWrite(t, db, func(tx *Tx) error { _, err := appendMsg(tx, "c@x", ids[0], 1, "x"); return err })
	if err := db.Write(context.Background(), func(tx *Tx) error { return tx.Ack(ids[1], 2) }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ack beyond head: %v", err)
	}
	mustWrite(t, db, func(tx *Tx) error { return tx.Ack(ids[1], 1) })
	mustWrite(t, db, func(tx *Tx) error { return tx.Ack(ids[1], 0) }) // lower: no change
	db.Read(context.Background(), func(tx *Tx) error {
		_, acked, err := tx.MailboxState(ids[1])
		if err != nil || acked != 1 {
			t.Fatalf("acked %d %v, want 1", acked, err)
		}
		return nil
	})
}

func TestKeyPackageClaim(t *testing.T) {
	db, _ := openTest(t)
	ids := fixture(t, db, "k", 1)
	mustWrite(t, db, func(tx *Tx) error {
		return tx.AddKeyPackages(ids[0], [][]byte{[]byte("kp1"), []byte("kp2")}, []byte("last"), 1)
	})
	want := []struct {
		pkg  string
		last bool
	}{{"kp1", false}, {"kp2", false}, {"last", true}, {"last", true}}
	for i, w := range want {
		mustWrite(t, db, func(tx *Tx) error {
			p, last, err := tx.ClaimKeyPackage(ids[0])
			if err != nil || string(p) != w.pkg || last != w.last {
				return fmt.Errorf("claim %d: %q last=%v err=%v", i, p, last, err)
			}
			return nil
		})
	}
}

// TestWelcomeGroupInfo: a commit logged with a Welcome keeps its GroupInfo
// and a welcome entry returns it; the commit entry itself, and a log row
// without a Welcome, return none.
func TestWelcomeGroupInfo(t *testing.T) {
	db, _ := openTest(t)
	ids := fixture(t, db, "w", 2)
	joiner := "w-new"
	mustWrite(t, db, func(tx *Tx) error {
		u, err := tx.UserByName("u-w")
		if err != nil {
			return err
		}
		if err := tx.InsertDevice(&Device{ID: joiner, UserID: u.ID, Name: "d", Status: DeviceActive, CreatedMs: 1}, nil); err != nil {
			return err
		}
		// A commit with no Welcome: its GroupInfo is not kept in the log.
		if err := tx.AppendLog(&LogEntry{ConvID: "w@x", Seq: 1, Sender: "u@x/" + ids[0], MessageID: "c1", Kind: 2,
			Payload: []byte("commit1"), GroupInfo: []byte("gi1"), CreatedMs: 1}); err != nil {
			return err
		}
		if err := tx.AppendLog(&LogEntry{ConvID: "w@x", Seq: 2, Sender: "u@x/" + ids[0], MessageID: "c2", Kind: 2,
			Payload: []byte("commit2"), Welcome: []byte("welcome2"), GroupInfo: []byte("gi2"), CreatedMs: 2}); err != nil {
			return err
		}
		if _, err := tx.FanOut("w@x", 2, ids[0], false, 0, 2); err != nil {
			return err
		}
		if err := tx.AddMember("w@x", Member{Address: "u@x/" + joiner, DeviceID: joiner}, 1); err != nil {
			return err
		}
		_, err = tx.FanOut("w@x", 2, ids[0], true, 1, 2)
		return err
	})
	err := db.Read(context.Background(), func(tx *Tx) error {
		es, err := tx.Entries(joiner, 0, 10)
		if err != nil {
			return err
		}
		if len(es) != 1 || !es[0].Welcome || string(es[0].Payload) != "welcome2" || string(es[0].GroupInfo) != "gi2" {
			return fmt.Errorf("joiner's entries: %+v", es)
		}
		es, err = tx.Entries(ids[1], 0, 10)
		if err != nil {
			return err
		}
		if len(es) != 1 || es[0].Welcome || string(es[0].Payload) != "commit2" || es[0].GroupInfo != nil {
			return fmt.Errorf("member's entries: %+v", es)
		}
		var n int
		if err := tx.row(`SELECT COUNT(*) FROM conversation_log WHERE group_info IS NOT NULL`, nil, &n); err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("%d log rows keep a GroupInfo, want 1 (the one with a Welcome)", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
