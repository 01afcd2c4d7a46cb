package store

import (
	"fmt"
	"strings"
	"testing"
)

// heads returns the ids of OutboxHeads, sorted by send order.
func heads(t *testing.T, s *Store) string {
	t.Helper()
	var got []string
	err := s.View(func(tx *Tx) error {
		items, err := tx.OutboxHeads()
		for _, it := range items {
			got = append(got, fmt.Sprintf("%s:%s", it.SendQueue(), it.ID))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(got, ",")
}

// TestOutboxHeads: the head of each queue is its oldest item not marked
// failed; a failed item leaves its queue's index and comes back when the
// mark is cleared; a sealed item (its conversation set) stays in the queue
// it was added to; a store written before the index is indexed on open.
func TestOutboxHeads(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	defer s.Close()
	add := func(id, conv, to string) {
		t.Helper()
		if err := s.Update(func(tx *Tx) error {
			_, err := tx.AddOutbox(OutboxItem{ID: id, Conversation: conv, To: to, Text: id})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	update := func(id string, change func(*OutboxItem)) {
		t.Helper()
		if err := s.Update(func(tx *Tx) error {
			it, err := tx.OutboxItem(id)
			if err != nil {
				return err
			}
			change(&it)
			return tx.UpdateOutbox(it)
		}); err != nil {
			t.Fatal(err)
		}
	}
	add("a1", "convA", "")
	add("b1", "", "bob@b.example")
	add("a2", "convA", "")
	add("b2", "", "bob@b.example")
	add("c1", "convC", "")
	for _, c := range []struct {
		step func()
		want string
	}{
		{func() {}, "convA:a1,convC:c1,to/bob@b.example:b1"},
		{func() { update("a1", func(it *OutboxItem) { it.Failed = "refused" }) }, "convA:a2,convC:c1,to/bob@b.example:b1"},
		{func() { update("b1", func(it *OutboxItem) { it.Conversation = "convB" }) }, "convA:a2,convC:c1,to/bob@b.example:b1"},
		{func() { s.Update(func(tx *Tx) error { return tx.DeleteOutbox("b1") }) }, "convA:a2,convC:c1,to/bob@b.example:b2"},
		{func() { s.Update(func(tx *Tx) error { return tx.DeleteOutbox("c1") }) }, "convA:a2,to/bob@b.example:b2"},
		{func() { update("a1", func(it *OutboxItem) { it.Failed = "" }) }, "convA:a1,to/bob@b.example:b2"},
		{func() { s.Update(func(tx *Tx) error { return tx.DeleteOutbox("a1") }) }, "convA:a2,to/bob@b.example:b2"},
	} {
		c.step()
		if got := heads(t, s); got != c.want {
			t.Fatalf("heads = %s, want %s", got, c.want)
		}
	}
	// Without the index (a store from before it), Open builds it.
	if err := s.Update(func(tx *Tx) error { return tx.tx.DeleteBucket(bOutQueues) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2 := open(t, dir)
	defer s2.Close()
	if got, want := heads(t, s2), "convA:a2,to/bob@b.example:b2"; got != want {
		t.Fatalf("heads after reindexing = %s, want %s", got, want)
	}
}

// TestOutboxHeadsSkipping: a skipped item is not its queue's head, the
// next one is; a queue whose items are all skipped has no head.
func TestOutboxHeadsSkipping(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	err := s.Update(func(tx *Tx) error {
		for _, it := range []OutboxItem{{ID: "a1", Conversation: "a"}, {ID: "b1", Conversation: "b"},
			{ID: "a2", Conversation: "a"}, {ID: "a3", Conversation: "a"}, {ID: "c1", Conversation: "c"}} {
			if _, err := tx.AddOutbox(it); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		skip []string
		want string
	}{
		{nil, "a:a1,b:b1,c:c1"},
		{[]string{"a1"}, "a:a2,b:b1,c:c1"},
		{[]string{"a1", "a2", "c1"}, "a:a3,b:b1"},
		{[]string{"a1", "a2", "a3", "b1"}, "c:c1"},
	} {
		var got []string
		err := s.Peek(func(tx *Tx) error {
			items, err := tx.OutboxHeadsSkipping(func(id string) bool { return strings.Contains(strings.Join(tc.skip, ","), id) })
			for _, it := range items {
				got = append(got, it.SendQueue()+":"+it.ID)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if g := strings.Join(got, ","); g != tc.want {
			t.Errorf("skipping %v: heads %s, want %s", tc.skip, g, tc.want)
		}
	}
}

// TestOutboxQueueSealed: an item just added may be sealed at once when
// it is the only one of its send queue, or when the one before it there
// is sealed; not when that one waits to be sealed, nor when it is not the
// last; failed items and other queues do not count.
func TestOutboxQueueSealed(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	add := func(id, conv string, sealed, failed bool) OutboxItem {
		t.Helper()
		var it OutboxItem
		if err := s.Update(func(tx *Tx) (err error) {
			it, err = tx.AddOutbox(OutboxItem{ID: id, Conversation: conv, Text: id})
			if err != nil {
				return err
			}
			if sealed {
				it.Payload = []byte("ciphertext")
			}
			if failed {
				it.Failed = "refused"
			}
			return tx.UpdateOutbox(it)
		}); err != nil {
			t.Fatal(err)
		}
		return it
	}
	check := func(it OutboxItem, want bool) {
		t.Helper()
		var got bool
		if err := s.Peek(func(tx *Tx) (err error) { got, err = tx.OutboxQueueSealed(it); return }); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("OutboxQueueSealed(%s) = %v, want %v", it.ID, got, want)
		}
	}
	a1 := add("a1", "convA", false, false)
	check(a1, true) // the only one
	b1 := add("b1", "convB", true, false)
	check(b1, true)
	a2 := add("a2", "convA", false, false)
	check(a2, false) // a1 waits to be sealed
	check(a1, false) // not the last
	b2 := add("b2", "convB", false, false)
	check(b2, true) // b1 is sealed
	b3 := add("b3", "convB", false, false)
	check(b3, false) // b2 is not
	c1 := add("c1", "convC", false, true)
	c2 := add("c2", "convC", false, false)
	check(c2, true) // c1 failed: out of the queue
	check(c1, false)
}
