package storage

import (
	"fmt"
	"testing"
)

// BenchmarkSendAccept runs the writer's part of 1:1 Sends as the hub does
// (sendLikeHub) over 100 two-device conversations, 256 Sends per
// transaction: one op is one Send. It shows the CPU of a Send's reads and
// writes with the commit's fixed cost spread thin; stmts/send is the
// writer's statements per Send.
func BenchmarkSendAccept(b *testing.B) {
	db, _ := openTest(b)
	const convs, perTx = 100, 256
	send := oneToOneSends(b, db, convs, func(n int) int { return n / convs % 2 })
	stmts0 := db.WriteStatements()
	b.ResetTimer()
	for done := 0; done < b.N; {
		k := min(perTx, b.N-done)
		mustWrite(b, db, func(tx *Tx) error {
			for range k {
				if err := send(tx); err != nil {
					return err
				}
			}
			return nil
		})
		done += k
	}
	b.StopTimer()
	b.ReportMetric(float64(db.WriteStatements()-stmts0)/float64(b.N), "stmts/send")
}

// oneToOneSends makes convs two-device conversations and returns a
// function that makes the next Send as the hub does (sendLikeHub, 300-byte
// payloads), to the conversations in turn, from the device senderOf
// names for the n-th Send (0 or 1).
func oneToOneSends(b *testing.B, db *DB, convs int, senderOf func(n int) int) func(*Tx) error {
	ids := make([][]string, convs)
	for i := range ids {
		ids[i] = fixture(b, db, fmt.Sprint("p", i), 2)
	}
	payload := make([]byte, 300)
	n := 0
	return func(tx *Tx) error {
		c := n % convs
		n++
		return sendLikeHub(tx, fmt.Sprintf("p%d@x", c), ids[c][senderOf(n)], fmt.Sprint("m", n), payload, int64(n))
	}
}
