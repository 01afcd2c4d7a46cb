//go:build !js

package store

import (
	"fmt"
	"testing"
	"time"
)

// TestPeekKeepsTopBuckets (bbolt only: the browser store keeps no
// buckets): a Peek opens each top-level bucket once (bbolt
// does not cache them in a read-only transaction), reads through the kept
// handle what the store holds, and an absent bucket reads as absent; an
// Update still sees the buckets it creates itself.
func TestPeekKeepsTopBuckets(t *testing.T) {
	s, err := Open(t.TempDir(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Update(func(tx *Tx) error {
		if tx.bucket(bInbox) != nil {
			t.Error("inbox bucket before any entry")
		}
		if err := tx.AddInbox(Message{ID: "m1", Conversation: "c", Text: "x"}); err != nil {
			return err
		}
		if tx.bucket(bInbox) == nil {
			t.Error("an Update does not see the inbox bucket it created")
		}
		for i := range 3 {
			if err := tx.PutMeta(fmt.Sprint("k", i), []byte{byte(i)}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Peek(func(tx *Tx) error {
		first := tx.bucket(bSync)
		for i := range 3 {
			if v := tx.Meta(fmt.Sprint("k", i)); len(v) != 1 || v[0] != byte(i) {
				t.Errorf("meta k%d = %v", i, v)
			}
		}
		if tx.bucket(bSync) != first {
			t.Error("the sync bucket was opened again in the same Peek")
		}
		if tx.ntop != 1 {
			t.Errorf("%d top-level buckets kept, want 1", tx.ntop)
		}
		if in, err := tx.Inbox(0); err != nil || len(in) != 1 || in[0].ID != "m1" {
			t.Errorf("inbox %v, %v", in, err)
		}
		if tx.bucket([]byte("no-such-bucket")) != nil {
			t.Error("an absent bucket reads as present")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkPeekMeta: one Peek reading five named values, as Flush's and
// Receive's checks do.
func BenchmarkPeekMeta(b *testing.B) {
	s, err := Open(b.TempDir(), time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.Update(func(tx *Tx) error {
		for i := range 5 {
			if err := tx.PutMeta(fmt.Sprint("k", i), make([]byte, 40)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	names := []string{"k0", "k1", "k2", "k3", "k4"}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Peek(func(tx *Tx) error {
			for _, n := range names {
				tx.Meta(n)
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}
