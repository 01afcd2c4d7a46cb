package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"
)

// oldLayout writes what a profile in the layout before decision 0022
// holds, as that layout's writer did: each conversation's MLS state in
// bucket groups under its id, its history in a nested bucket of history
// keyed by seq (binary records, and one JSON record of an older
// version), the mailbox sequence in sync; values sealed under those keys
// when the profile is encrypted. The new layout's buckets are removed
// first, as such a profile has none.
func oldLayout(t *Tx, states map[string][]byte, hist []Message, mailbox uint64) error {
	for _, b := range [][]byte{bConvs, bMailbox} {
		if t.tx.Bucket(b) != nil {
			if err := t.tx.DeleteBucket(b); err != nil {
				return err
			}
		}
	}
	groups, err := t.tx.CreateBucketIfNotExists(bGroups)
	if err != nil {
		return err
	}
	for conv, st := range states {
		if err := t.put(groups, []byte(conv), st); err != nil {
			return err
		}
	}
	history, err := t.tx.CreateBucketIfNotExists(bHistory)
	if err != nil {
		return err
	}
	for i, m := range hist {
		b, err := history.CreateBucketIfNotExists([]byte(m.Conversation))
		if err != nil {
			return err
		}
		raw, err := encodeRecord(m)
		if i == 0 {
			raw, err = json.Marshal(m)
		}
		if err != nil {
			return err
		}
		if err := t.put(b, u64key(m.Seq), raw); err != nil {
			return err
		}
	}
	return t.bucket(bSync).Put(kMailbox, u64key(mailbox))
}

// TestOldLayoutMigrates: a profile in the earlier layout (plain and
// encrypted) opens with every group state, history message, ratchet
// tree, outbox item, inbox entry and the mailbox sequence where they
// were, the old buckets gone; opening it again changes nothing; old
// buckets written again (an older hearth run on the migrated profile)
// are merged in at the next open.
func TestOldLayoutMigrates(t *testing.T) {
	for _, pass := range []string{"", "old layout passphrase"} {
		t.Run(fmt.Sprintf("encrypted=%v", pass != ""), func(t *testing.T) {
			testOldLayoutMigrates(t, []byte(pass))
		})
	}
}

func testOldLayoutMigrates(t *testing.T, pass []byte) {
	dir := t.TempDir()
	openIt := func() *Store {
		t.Helper()
		s, err := OpenWith(dir, time.Second, Options{Passphrase: pass})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	convs := []string{"c1@a.example", "c2@a.example", "c10@b.example"}
	states := map[string][]byte{}
	var hist []Message
	for ci, conv := range convs {
		states[conv] = bytes.Repeat([]byte{byte(ci + 1)}, 900+ci*300)
		for seq := 1; seq <= 40*(ci+1); seq++ {
			hist = append(hist, Message{ID: fmt.Sprintf("%s-%d", conv, seq), Conversation: conv, From: "bob@a.example",
				Text: fmt.Sprint("message ", seq), SentAt: time.Unix(int64(seq), 0).UTC(), Seq: uint64(seq)})
		}
	}
	tree := []byte("ratchet tree bytes")
	s := openIt()
	var items []OutboxItem
	err := s.Update(func(tx *Tx) error {
		if err := tx.PutAccount(Account{User: "alice@a.example", DeviceID: "D1"}); err != nil {
			return err
		}
		for i, conv := range convs {
			it, err := tx.AddOutbox(OutboxItem{ID: fmt.Sprint("out", i), Conversation: conv, Text: "queued", Created: time.Unix(9, 0).UTC()})
			if err != nil {
				return err
			}
			items = append(items, it)
		}
		if err := tx.AddInbox(hist[len(hist)-1]); err != nil {
			return err
		}
		if err := treesOf(tx).sync(convs[0], map[string][]byte{"ref1": tree}); err != nil {
			return err
		}
		return oldLayout(tx, states, hist, 77)
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	check := func(s *Store, states map[string][]byte, hist []Message, mailbox uint64) {
		t.Helper()
		err := s.View(func(tx *Tx) error {
			for _, b := range [][]byte{bGroups, bHistory} {
				if tx.bucket(b) != nil {
					t.Errorf("bucket %s still there", b)
				}
			}
			if tx.bucket(bSync).Get(kMailbox) != nil {
				t.Error("the mailbox sequence is still in sync")
			}
			if got := tx.MailboxSeq(); got != mailbox {
				t.Errorf("mailbox seq %d, want %d", got, mailbox)
			}
			want := slices.Sorted(func(yield func(string) bool) {
				for c := range states {
					if !yield(c) {
						return
					}
				}
			})
			if got := tx.Conversations(); !reflect.DeepEqual(got, want) {
				t.Errorf("conversations %q, want %q", got, want)
			}
			if got := tx.HistoryConversations(); !reflect.DeepEqual(got, want) {
				t.Errorf("history conversations %q, want %q", got, want)
			}
			for conv, st := range states {
				if got, err := tx.Group(conv); err != nil || !bytes.Equal(got, st) {
					t.Errorf("state of %s: %d bytes, %v; want %d bytes", conv, len(got), err, len(st))
				}
				var want []Message
				for _, m := range hist {
					if m.Conversation == conv {
						want = append(want, m)
					}
				}
				got, err := tx.History(conv, 0)
				if err != nil || !reflect.DeepEqual(got, want) {
					t.Errorf("history of %s: %d messages, %v; want %d", conv, len(got), err, len(want))
				}
				if last, err := tx.History(conv, 3); err != nil || !reflect.DeepEqual(last, want[len(want)-3:]) {
					t.Errorf("last 3 of %s: %v, %v", conv, last, err)
				}
				if r, err := tx.HistoryRange(conv, 5, 9); err != nil || !reflect.DeepEqual(r, want[5:9]) {
					t.Errorf("range 5..9 of %s: %v, %v", conv, r, err)
				}
			}
			if got, err := tx.GroupTree(convs[0], []byte("ref1")); err != nil || !bytes.Equal(got, tree) {
				t.Errorf("tree: %q, %v", got, err)
			}
			for _, it := range items {
				if got, err := tx.OutboxItem(it.ID); err != nil || got.Seq != it.Seq || got.Conversation != it.Conversation {
					t.Errorf("outbox item %s: %+v, %v", it.ID, got, err)
				}
			}
			if in, err := tx.Inbox(0); err != nil || len(in) != 1 || in[0].ID != hist[len(hist)-1].ID {
				t.Errorf("inbox %v, %v", in, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	s = openIt()
	check(s, states, hist, 77)
	s.Close()
	s = openIt() // nothing left to move
	check(s, states, hist, 77)

	// An older hearth ran on the migrated profile: it found no state
	// and no history, and wrote old buckets again.
	newer := map[string][]byte{convs[0]: []byte("a state written by an older hearth")}
	extra := Message{ID: "late", Conversation: convs[0], From: "bob@a.example", Text: "late", SentAt: time.Unix(500, 0).UTC(), Seq: 500}
	err = s.Update(func(tx *Tx) error {
		groups, err := tx.tx.CreateBucketIfNotExists(bGroups)
		if err != nil {
			return err
		}
		if err := tx.put(groups, []byte(convs[0]), newer[convs[0]]); err != nil {
			return err
		}
		history, err := tx.tx.CreateBucketIfNotExists(bHistory)
		if err != nil {
			return err
		}
		b, err := history.CreateBucketIfNotExists([]byte(extra.Conversation))
		if err != nil {
			return err
		}
		raw, err := encodeRecord(extra)
		if err != nil {
			return err
		}
		if err := tx.put(b, u64key(extra.Seq), raw); err != nil {
			return err
		}
		return tx.bucket(bSync).Put(kMailbox, u64key(90))
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openIt()
	defer s.Close()
	states[convs[0]] = newer[convs[0]]
	check(s, states, append(slices.Clone(hist[:40]), append([]Message{extra}, hist[40:]...)...), 90)
}

// TestConversationIDsKeepTheirKeysTogether: an id that could interleave
// its keys with another conversation's is refused.
func TestConversationIDsKeepTheirKeysTogether(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	err := s.Update(func(tx *Tx) error {
		if _, err := tx.AddHistory(Message{ID: "m", Conversation: "c\x00x", Seq: 1}); err == nil {
			t.Error("history of a conversation id with a zero byte accepted")
		}
		if err := tx.PutGroup("c\x01", []byte("s")); err == nil {
			t.Error("state of a conversation id with a 0x01 byte accepted")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
