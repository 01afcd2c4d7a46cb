package client_test

import (
	"fmt"
	"slices"
	"testing"

	"hearth/client"
	"hearth/client/store"
)

// TestFlushPipelinesInOrder: a Flush of many queued messages has several
// Sends in flight at once, and the hub's order (the conversation sequence
// in the sender's history and at the receiver) is the queue order, also
// when the server's rate limit refuses some of them on the way.
func TestFlushPipelinesInOrder(t *testing.T) {
	ts := client.NewTestServer(t, "a.example") // default limit: 50/s, burst 100
	const pw = "correct horse battery"
	A, B := ts.AddUser(t, "alice", pw), ts.AddUser(t, "bob", pw)
	a1, b1 := newDev(t, ts, A), newDev(t, ts, B)
	a1.login(pw)
	b1.login(pw)
	a1.send(B, "hello")
	b1.recv(A + ":hello")
	const n = 150 // over the burst: some Sends are refused and retried
	var ids, want []string
	for i := range n {
		id, err := a1.c.Queue(B, fmt.Sprint("p", i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		want = append(want, fmt.Sprintf("%s:p%d", A, i))
	}
	if err := a1.c.Flush(ctx30(t), ids[n-1]); err != nil {
		t.Fatal(err)
	}
	if got := a1.c.MaxInFlight(); got < 16 {
		t.Fatalf("at most %d Sends in flight; want a pipelined window of at least 16", got)
	}
	h, err := a1.c.History(B, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var seqs []uint64
	for _, m := range h[1:] {
		got = append(got, m.ID)
		seqs = append(seqs, m.Seq)
	}
	if !slices.Equal(got, ids) || !slices.IsSorted(seqs) {
		t.Fatalf("sender history out of queue order: ids %v seqs %v", got, seqs)
	}
	b1.recv(want...)
	var left []store.OutboxItem
	a1.c.Store().View(func(tx *store.Tx) (err error) { left, err = tx.Outbox(); return })
	if len(left) != 0 {
		t.Fatalf("outbox still holds %d items", len(left))
	}
}
