package client_test

import (
	"fmt"
	"slices"
	"testing"

	"hearth/client"
	"hearth/client/store"
)

// TestFlushPipelinesInOrder: a Flush of many messages queued to several
// users has several Sends in flight at once (one per conversation), and
// each conversation's hub order (the sequence in the sender's history and
// at the receiver) is its queue order, also when the server's rate limit
// refuses some of them on the way.
func TestFlushPipelinesInOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("over 2 s: not in the -short loop")
	}
	ts := client.NewTestServer(t, "a.example") // default limit: 50/s, burst 100
	const pw = "correct horse battery"
	a1 := newDev(t, ts, ts.AddUser(t, "alice", pw))
	a1.login(pw)
	var peers []*dev
	for _, name := range []string{"bob", "carol", "dave", "erin"} {
		p := newDev(t, ts, ts.AddUser(t, name, pw))
		p.login(pw)
		a1.send(p.user, "hello")
		p.recv(a1.user + ":hello")
		peers = append(peers, p)
	}
	const each = 40 // 160 in all: over the burst, so some Sends are refused and retried
	ids := map[string][]string{}
	want := map[string][]string{}
	for i := range each {
		for _, p := range peers {
			id, err := a1.c.Queue(p.user, fmt.Sprint("p", i))
			if err != nil {
				t.Fatal(err)
			}
			ids[p.user] = append(ids[p.user], id)
			want[p.user] = append(want[p.user], fmt.Sprintf("%s:p%d", a1.user, i))
		}
	}
	if err := a1.c.Flush(ctx30(t), ""); err != nil { // everything: a Flush for one id returns once it is sent
		t.Fatal(err)
	}
	if got := a1.c.MaxInFlight(); got < len(peers) {
		t.Fatalf("at most %d Sends in flight; want one per conversation (%d)", got, len(peers))
	}
	for _, p := range peers {
		h, err := a1.c.History(p.user, 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		var seqs []uint64
		for _, m := range h[1:] {
			got = append(got, m.ID)
			seqs = append(seqs, m.Seq)
		}
		if !slices.Equal(got, ids[p.user]) || !slices.IsSorted(seqs) {
			t.Fatalf("history with %s out of queue order: ids %v seqs %v", p.user, got, seqs)
		}
		p.recv(want[p.user]...)
	}
	var left []store.OutboxItem
	a1.c.Store().View(func(tx *store.Tx) (err error) { left, err = tx.Outbox(); return })
	if len(left) != 0 {
		t.Fatalf("outbox still holds %d items", len(left))
	}
}
