package client_test

import (
	"fmt"
	"testing"
	"time"

	"hearth/client"
	"hearth/client/mlsgroup"
)

// TestGroupCacheServesRepeatedLoads: sending and receiving a run of
// messages restores each conversation's MLS state from the cache instead of
// parsing it for every message.
func TestGroupCacheServesRepeatedLoads(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	const pw = "correct horse battery"
	A, B := ts.AddUser(t, "alice", pw), ts.AddUser(t, "bob", pw)
	a1, b1 := newDev(t, ts, A), newDev(t, ts, B)
	a1.login(pw)
	b1.login(pw)
	a1.send(B, "first")
	b1.recv(A + ":first")
	ah0, am0 := a1.c.GroupCacheStats()
	bh0, bm0 := b1.c.GroupCacheStats()
	var want []string
	for i := range 10 {
		a1.send(B, fmt.Sprint("m", i))
		want = append(want, fmt.Sprintf("%s:m%d", A, i))
	}
	b1.recv(want...)
	ah, am := a1.c.GroupCacheStats()
	bh, bm := b1.c.GroupCacheStats()
	t.Logf("sender: %d hits %d misses; receiver: %d hits %d misses", ah-ah0, am-am0, bh-bh0, bm-bm0)
	if ah-ah0 < 10 || am-am0 > 2 {
		t.Fatalf("sender: %d cache hits, %d misses for 10 sends; want ≥ 10 hits and ≤ 2 misses", ah-ah0, am-am0)
	}
	if bh-bh0 < 9 || bm-bm0 > 2 {
		t.Fatalf("receiver: %d cache hits, %d misses for 10 deliveries; want ≥ 9 hits and ≤ 2 misses", bh-bh0, bm-bm0)
	}
}

// TestGroupCacheNotStaleAcrossProcesses: two Clients on one profile (as
// `hearth chat send` runs beside `hearth chat recv --follow`) send in turn.
// Each must encrypt with the state the other saved, never with its own
// cached copy: a reused ratchet generation would not decrypt at the peer.
func TestGroupCacheNotStaleAcrossProcesses(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	const pw = "correct horse battery"
	A, B := ts.AddUser(t, "alice", pw), ts.AddUser(t, "bob", pw)
	a1, b1 := newDev(t, ts, A), newDev(t, ts, B)
	a1.login(pw)
	b1.login(pw)
	a1.send(B, "one")
	b1.recv(A + ":one")
	other, err := client.Open(client.Config{Profile: a1.profile, Dial: ts.Dial(), Groups: mlsgroup.New(),
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	a2 := &dev{t: t, c: other, user: A, profile: a1.profile}
	a1.send(B, "two")
	a2.send(B, "three")
	a1.send(B, "four")
	a2.send(B, "five")
	b1.recv(A+":two", A+":three", A+":four", A+":five")
	b1.send(A, "back")
	a1.recv(B + ":back")
}
