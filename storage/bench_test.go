package storage

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkGroupCommit measures durable (synchronous=FULL) small writes
// from many concurrent writers: each op is one committed user insert.
func BenchmarkGroupCommit(b *testing.B) {
	db, _ := openTest(b)
	var n atomic.Int64
	b.SetParallelism(64) // 64 × GOMAXPROCS concurrent writers
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if err := db.Write(context.Background(), func(tx *Tx) error {
				return tx.InsertUser(&User{Name: fmt.Sprint("u", i), PassHash: "h", CreatedMs: i})
			}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	batches, reqs := db.WriteStats()
	b.ReportMetric(float64(reqs)/float64(max(batches, 1)), "reqs/tx")
}

// BenchmarkMailboxFanOut appends one logged message to a 256-device
// conversation: one op is log append + fan-out + commit.
func BenchmarkMailboxFanOut(b *testing.B) {
	db, _ := openTest(b)
	ids := fixture(b, db, "f", 256)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		seq := uint64(i + 1)
		mustWrite(b, db, func(tx *Tx) error {
			_, err := appendMsg(tx, "f@x", ids[0], seq, "payload")
			return err
		})
	}
	b.ReportMetric(float64(b.N*255)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkMailboxReadAfter reads the next 64 entries of a mailbox after a
// position, as a reconnecting device's Sync does.
func BenchmarkMailboxReadAfter(b *testing.B) {
	db, _ := openTest(b)
	ids := fixture(b, db, "r", 2)
	const total = 2048
	for s := uint64(1); s <= total; s += 64 {
		mustWrite(b, db, func(tx *Tx) error {
			for k := s; k < s+64; k++ {
				if _, err := appendMsg(tx, "r@x", ids[0], k, "payload of a typical size, some tens of bytes"); err != nil {
					return err
				}
			}
			return nil
		})
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		after := uint64(i*64) % (total - 64)
		err := db.Read(context.Background(), func(tx *Tx) error {
			es, err := tx.Entries(ids[1], after, 64)
			if err == nil && (len(es) != 64 || es[0].Seq != after+1) {
				err = fmt.Errorf("read %d entries after %d", len(es), after)
			}
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
