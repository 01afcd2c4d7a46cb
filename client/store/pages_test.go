//go:build !js

package store

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// TestPagesPerMessage: the commit of a message sent (the item queued and
// sealed with the advanced group state, the previous message moved from
// the outbox to history) and of a message received (history, inbox, group
// state, mailbox sequence, the previous inbox entry removed) each rewrite
// five pages while the conversation's history fits under one branch page:
// bbolt's meta and freelist pages, the root page (which holds the small
// outbox, inbox and mailbox buckets), and the conversations bucket's
// branch and newest leaf, where the group state stays beside the newest
// messages. The earlier layout wrote seven on each side (the history
// bucket's page, the conversation's own bucket, the groups or sync page).
func TestPagesPerMessage(t *testing.T) {
	const conv = "0123456789abcdef0123@a.example"
	const n, measured = 400, 200
	state := bytes.Repeat([]byte{7}, 1000) // a two-member group's split state is ≈ 1 KB
	trees := map[string][]byte{"tree-ref": bytes.Repeat([]byte{9}, 600)}
	msg := func(i int) Message {
		return Message{ID: fmt.Sprint("m", i), Conversation: conv, From: "alice@a.example", Text: fmt.Sprint("benchmark message ", i),
			SentAt: time.Unix(int64(i), 0).UTC(), Seq: uint64(i)}
	}
	perCommit := func(s *Store, commit func(i int) error) float64 {
		var pages0 int64
		for i := 1; i <= n; i++ {
			if i == n-measured+1 {
				pages0, _, _ = s.WriteStats()
			}
			if err := commit(i); err != nil {
				t.Fatal(err)
			}
		}
		pages, _, _ := s.WriteStats()
		return float64(pages-pages0) / measured
	}

	snd := open(t, t.TempDir())
	defer snd.Close()
	sent := perCommit(snd, func(i int) error {
		return snd.Update(func(tx *Tx) error {
			if _, err := tx.AddOutbox(OutboxItem{ID: fmt.Sprint("m", i), Conversation: conv, Text: "x",
				Payload: bytes.Repeat([]byte{1}, 300), Created: time.Unix(int64(i), 0).UTC()}); err != nil {
				return err
			}
			if err := tx.PutGroupSplit(conv, state, trees); err != nil {
				return err
			}
			if i == 1 {
				return nil
			}
			if _, err := tx.AddHistory(msg(i - 1)); err != nil {
				return err
			}
			return tx.DeleteOutbox(fmt.Sprint("m", i-1))
		})
	})

	rcv := open(t, t.TempDir())
	defer rcv.Close()
	received := perCommit(rcv, func(i int) error {
		return rcv.Update(func(tx *Tx) error {
			if i > 1 {
				if err := tx.DeleteInbox(uint64(i - 1)); err != nil {
					return err
				}
			}
			if _, err := tx.AddHistory(msg(i)); err != nil {
				return err
			}
			if err := tx.AddInbox(msg(i)); err != nil {
				return err
			}
			if err := tx.PutGroupSplit(conv, state, trees); err != nil {
				return err
			}
			return tx.SetMailboxSeq(uint64(i))
		})
	})
	t.Logf("pages per commit: sender %.2f, receiver %.2f", sent, received)
	if sent > 5.2 || received > 5.2 {
		t.Errorf("pages per commit: sender %.2f, receiver %.2f; want at most 5.2 (5, and a page split now and then)", sent, received)
	}
}
