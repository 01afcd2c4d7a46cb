package storage

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// BenchmarkClaimLargeTable: one op is one dedup claim (ClaimSendRecord)
// of a new (sender, message id), 64 claims per writer transaction,
// against a table already holding 1,000,000 records of 2,000 senders
// with message ids of 32 random hex digits (as a day of Sends leaves
// it); the time per op includes each transaction's COMMIT and fsync.
func BenchmarkClaimLargeTable(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "hearth.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	n := 0
	claim := func(tx *Tx) error {
		n++
		r := &SendRecord{Sender: fmt.Sprintf("user%04d@hearth.example/DEV%012d", n%2000, n%2000),
			MessageID: fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64()), ConvID: "c@hearth.example",
			ConvSeq: uint64(n), Epoch: 1, CreatedMs: int64(n)}
		if ok, err := tx.ClaimSendRecord(r); err != nil || !ok {
			return fmt.Errorf("claim %d: %v %v", n, ok, err)
		}
		return nil
	}
	batch := func(k int) {
		mustWrite(b, db, func(tx *Tx) error {
			for range k {
				if err := claim(tx); err != nil {
					return err
				}
			}
			return nil
		})
	}
	for range 1000 {
		batch(1000)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i += 64 {
		batch(min(64, b.N-i))
	}
}
