package store

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	acct := Account{User: "alice@a.example", DeviceID: "D1", Server: "127.0.0.1:1", AccessToken: "tok", Active: true}
	err := s.Update(func(tx *Tx) error {
		if err := tx.PutAccount(acct); err != nil {
			return err
		}
		if err := tx.PutKey(KeySignature, []byte("sig-seed")); err != nil {
			return err
		}
		if err := tx.PutKeyPackage([]byte("ref1"), []byte("kp-priv")); err != nil {
			return err
		}
		if err := tx.PutGroup("c1@a.example", []byte("state")); err != nil {
			return err
		}
		return tx.SetMailboxSeq(7)
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = open(t, dir)
	defer s.Close()
	s.View(func(tx *Tx) error {
		got, err := tx.Account()
		if err != nil || got != acct {
			t.Errorf("account = %+v, %v; want %+v", got, err, acct)
		}
		if k, err := tx.Key(KeySignature); err != nil || string(k) != "sig-seed" {
			t.Errorf("signature key = %q, %v", k, err)
		}
		if k, err := tx.KeyPackage([]byte("ref1")); err != nil || string(k) != "kp-priv" {
			t.Errorf("key package = %q, %v", k, err)
		}
		if refs := tx.KeyPackageRefs(); len(refs) != 1 || string(refs[0]) != "ref1" {
			t.Errorf("refs = %q", refs)
		}
		if g, err := tx.Group("c1@a.example"); err != nil || string(g) != "state" {
			t.Errorf("group = %q, %v", g, err)
		}
		if c := tx.Conversations(); len(c) != 1 || c[0] != "c1@a.example" {
			t.Errorf("conversations = %q", c)
		}
		if seq := tx.MailboxSeq(); seq != 7 {
			t.Errorf("mailbox seq = %d, want 7", seq)
		}
		return nil
	})
}

func TestFailedUpdateChangesNothing(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	boom := errors.New("boom")
	err := s.Update(func(tx *Tx) error {
		if err := tx.PutGroup("c", []byte("new")); err != nil {
			return err
		}
		if _, err := tx.AddOutbox(OutboxItem{ID: "m1", Conversation: "c", Text: "hi"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	s.View(func(tx *Tx) error {
		if _, err := tx.Group("c"); err != ErrNotFound {
			t.Errorf("group after rollback: %v, want ErrNotFound", err)
		}
		if items, _ := tx.Outbox(); len(items) != 0 {
			t.Errorf("outbox after rollback: %+v", items)
		}
		return nil
	})
}

func TestBadInputRefused(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	cases := map[string]func(tx *Tx) error{
		"account without device": func(tx *Tx) error { return tx.PutAccount(Account{User: "a@b"}) },
		"empty key":              func(tx *Tx) error { return tx.PutKey(KeyLink, nil) },
		"empty group":            func(tx *Tx) error { return tx.PutGroup("c", nil) },
		"outbox without id": func(tx *Tx) error {
			_, err := tx.AddOutbox(OutboxItem{Conversation: "c"})
			return err
		},
		"history without seq": func(tx *Tx) error {
			_, err := tx.AddHistory(Message{ID: "m", Conversation: "c"})
			return err
		},
	}
	for name, fn := range cases {
		if err := s.Update(fn); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestMailboxSeqOnlyGrows(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	for _, c := range []struct {
		seq uint64
		ok  bool
	}{{3, true}, {3, false}, {2, false}, {4, true}} {
		err := s.Update(func(tx *Tx) error { return tx.SetMailboxSeq(c.seq) })
		if (err == nil) != c.ok {
			t.Errorf("SetMailboxSeq(%d) = %v, want ok=%v", c.seq, err, c.ok)
		}
	}
	s.View(func(tx *Tx) error {
		if got := tx.MailboxSeq(); got != 4 {
			t.Errorf("seq = %d, want 4", got)
		}
		return nil
	})
}

func TestOutboxOrderAndIDs(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	err := s.Update(func(tx *Tx) error {
		for _, id := range []string{"m1", "m2", "m3"} {
			if _, err := tx.AddOutbox(OutboxItem{ID: id, To: "bob@b.example", Text: "text " + id}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(tx *Tx) error {
		_, err := tx.AddOutbox(OutboxItem{ID: "m2", To: "bob@b.example"})
		return err
	}); err == nil {
		t.Fatal("duplicate message id accepted")
	}
	err = s.Update(func(tx *Tx) error {
		it, err := tx.OutboxItem("m2")
		if err != nil {
			return err
		}
		it.Payload, it.Epoch, it.Conversation = []byte("ct"), 5, "c@a"
		if err := tx.UpdateOutbox(it); err != nil {
			return err
		}
		return tx.DeleteOutbox("m1")
	})
	if err != nil {
		t.Fatal(err)
	}
	s.View(func(tx *Tx) error {
		items, err := tx.Outbox()
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, it := range items {
			ids = append(ids, it.ID)
		}
		if strings.Join(ids, ",") != "m2,m3" {
			t.Errorf("outbox order = %v", ids)
		}
		if string(items[0].Payload) != "ct" || items[0].Epoch != 5 {
			t.Errorf("updated item = %+v", items[0])
		}
		if _, err := tx.OutboxItem("m1"); err != ErrNotFound {
			t.Errorf("deleted item: %v", err)
		}
		return nil
	})
}

func TestHistoryOrderDedupAndLimit(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	msg := func(seq uint64, id string) Message {
		return Message{ID: id, Conversation: "c@a", From: "alice@a", Text: "t" + id, SentAt: at, Seq: seq}
	}
	err := s.Update(func(tx *Tx) error {
		for _, m := range []Message{msg(3, "c"), msg(1, "a"), msg(2, "b")} {
			if added, err := tx.AddHistory(m); err != nil || !added {
				t.Errorf("AddHistory(%s) = %v, %v", m.ID, added, err)
			}
		}
		if added, err := tx.AddHistory(msg(2, "b")); err != nil || added {
			t.Errorf("re-adding = %v, %v; want no-op", added, err)
		}
		if _, err := tx.AddHistory(msg(2, "x")); err == nil {
			t.Error("conflicting message at same seq accepted")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s.View(func(tx *Tx) error {
		all, _ := tx.History("c@a", 0)
		last2, _ := tx.History("c@a", 2)
		if len(all) != 3 || all[0].ID != "a" || all[2].ID != "c" {
			t.Errorf("history = %+v", all)
		}
		if len(last2) != 2 || last2[0].ID != "b" || last2[1].ID != "c" {
			t.Errorf("last 2 = %+v", last2)
		}
		if !all[0].SentAt.Equal(at) {
			t.Errorf("sent_at = %v", all[0].SentAt)
		}
		return nil
	})
}

func TestInboxQueue(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	s.Update(func(tx *Tx) error {
		for i, id := range []string{"a", "b", "c"} {
			if err := tx.AddInbox(Message{ID: id, Conversation: "c", Seq: uint64(i + 1)}); err != nil {
				t.Fatal(err)
			}
		}
		return nil
	})
	var first []InboxEntry
	s.View(func(tx *Tx) (err error) { first, err = tx.Inbox(2); return })
	if len(first) != 2 || first[0].ID != "a" || first[1].ID != "b" {
		t.Fatalf("inbox(2) = %+v", first)
	}
	s.Update(func(tx *Tx) error { return tx.DeleteInbox(first[1].Pos) })
	var rest []InboxEntry
	s.View(func(tx *Tx) (err error) { rest, err = tx.Inbox(0); return })
	if len(rest) != 1 || rest[0].ID != "c" {
		t.Fatalf("inbox after delete = %+v", rest)
	}
}

func TestCountKeyPackages(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	err := s.Update(func(tx *Tx) error {
		for _, ref := range []string{"a", "b", "c", "d"} {
			if err := tx.PutKeyPackage([]byte(ref), []byte("priv-"+ref)); err != nil {
				return err
			}
		}
		return tx.PutKey(KeySignature, []byte("sig")) // not a KeyPackage
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Peek(func(tx *Tx) error {
		notB := func(ref []byte) bool { return string(ref) != "b" }
		for _, c := range []struct {
			max    int
			counts func([]byte) bool
			want   int
		}{{0, nil, 4}, {2, nil, 2}, {0, notB, 3}, {3, notB, 3}, {9, notB, 3}} {
			if got := tx.CountKeyPackages(c.max, c.counts); got != c.want {
				t.Errorf("CountKeyPackages(%d, filter %v) = %d, want %d", c.max, c.counts != nil, got, c.want)
			}
		}
		return nil
	})
}
