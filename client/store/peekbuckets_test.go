//go:build !js

package store

import (
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
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

// TestPlainCheckedOncePerOpening: on a profile without a key, the check
// for an encryption made by another process (lockedElsewhere) is marked
// done by a write transaction on the open file, never by a read one, is
// dropped by an encryption, and is made again once the file was opened
// again (TestEncryptProfile: a store opened before another encrypted the
// profile is refused).
func TestPlainCheckedOncePerOpening(t *testing.T) {
	s, err := Open(t.TempDir(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Peek(func(*Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if s.plain.Load() != nil {
		t.Fatal("a read transaction marked the profile unencrypted")
	}
	if err := s.Update(func(tx *Tx) error { return tx.PutMeta("k", []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	first := s.plain.Load()
	if first == nil || first != s.db {
		t.Fatal("a write transaction did not mark the open file unencrypted")
	}
	if err := s.Compact(); err != nil { // closes the file: the next transaction opens it again
		t.Fatal(err)
	}
	if err := s.Update(func(tx *Tx) error { return tx.PutMeta("k", []byte("w")) }); err != nil {
		t.Fatal(err)
	}
	if got := s.plain.Load(); got == first || got != s.db {
		t.Fatal("the mark outlived the file it was made on")
	}
	var during *bolt.DB
	if err := s.encrypt(func(tx *Tx) (*sealer, error) {
		sl, err := encryptAll(tx, []byte("pass"))
		during = s.plain.Load() // (forgetPlain runs after seal returns)
		return sl, err
	}); err != nil {
		t.Fatal(err)
	}
	if during == nil || s.plain.Load() != nil {
		t.Fatalf("the mark was not dropped by the encryption (before %v, after %v)", during != nil, s.plain.Load() != nil)
	}
}
