package store

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkUpdate is one small read-write transaction (as a delivery or a
// send commits), back to back: the file stays open between them.
func BenchmarkUpdate(b *testing.B) {
	s, err := Open(b.TempDir(), time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	state := make([]byte, 8<<10) // a 1:1 group state is about this size
	b.ResetTimer()
	for i := range b.N {
		err := s.Update(func(tx *Tx) error {
			if err := tx.PutGroup("c@a.example", state); err != nil {
				return err
			}
			return tx.SetMailboxSeq(uint64(i) + 1)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkView is one read-only transaction reading the account.
func BenchmarkView(b *testing.B) {
	s, err := Open(b.TempDir(), time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.Update(func(tx *Tx) error {
		return tx.PutAccount(Account{User: "a@a.example", DeviceID: "D"})
	}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if err := s.View(func(tx *Tx) error { _, err := tx.Account(); return err }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpdateBatch commits n inbox entries per transaction, as a batch
// of pushed deliveries is stored (cost per entry is ns/op / n).
func BenchmarkUpdateBatch(b *testing.B) {
	for _, n := range []int{1, 64} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			s, err := Open(b.TempDir(), time.Second)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			b.ResetTimer()
			for range b.N {
				err := s.Update(func(tx *Tx) error {
					for range n {
						if err := tx.AddInbox(Message{ID: "m", Conversation: "c", Text: "hello", Seq: 1}); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
