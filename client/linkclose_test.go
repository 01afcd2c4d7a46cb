package client_test

import (
	"fmt"
	"testing"
	"time"

	"hearth/client"
	"hearth/client/mlsgroup"
	"hearth/client/store"
)

// TestLinkedDeviceClosedWhileWelcomesArrive: a new device that is closed
// right after its approval, while the Welcomes of its user's conversations
// arrive (what `hearth chat login` does: it exits once approved), is in
// every conversation when it opens again: each peer's next message reaches
// it. Linked five times over, so that the approving device's commits,
// the new device's Welcomes and the close race in different ways.
func TestLinkedDeviceClosedWhileWelcomesArrive(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	const pw = "correct horse battery"
	A := ts.AddUser(t, "alice", pw)
	a1 := newDev(t, ts, A)
	a1.login(pw)
	var peers []*dev
	for _, name := range []string{"bob", "carol", "dave", "erin"} {
		p := newDev(t, ts, ts.AddUser(t, name, pw))
		p.login(pw)
		peers = append(peers, p)
	}
	for i, p := range peers {
		a1.send(p.user, fmt.Sprint("hello ", i))
		p.recv(A + ":" + fmt.Sprint("hello ", i))
	}
	for round := range 5 {
		ak := newDev(t, ts, A)
		res := ak.login(pw)
		if res.LinkCode == "" {
			t.Fatalf("round %d: not pending: %+v", round, res)
		}
		done := make(chan error, 1)
		go func() { done <- ak.c.WaitApproval(ctx30(t), 5*time.Millisecond) }()
		if _, err := a1.c.Approve(ctx30(t), res.LinkCode); err != nil {
			t.Fatalf("round %d: approve: %v", round, err)
		}
		if err := <-done; err != nil {
			t.Fatalf("round %d: wait approval: %v", round, err)
		}
		ak.c.Close() // at once, as the login command exits
		c, err := client.Open(client.Config{Profile: ak.profile, Dial: ts.Dial(), Groups: mlsgroup.New(),
			MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		ak.c = c
		var want []string
		for i, p := range peers {
			text := fmt.Sprintf("round %d from %d", round, i)
			p.send(A, text)
			want = append(want, p.user+":"+text)
		}
		ak.recv(want...)
		if err := a1.c.Receive(ctx30(t), 50*time.Millisecond, func(store.Message) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
}
