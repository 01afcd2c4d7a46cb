package client_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"hearth/client"
)

// TestParkedConversationDoesNotBlockOthers: ann is in group A (hubbed on
// a.example, with ben of b.example and cat) and in a 1:1 B with cat.
// While ann is offline, ben drops his device ben2 from his list and cat
// (not an admin) removes ben2 from A in an ordinary commit, then sends
// a1 and a2 to A; b.example goes down; cat sends b1 to B. ann's check of
// the removal needs ben's list, which cannot be fetched: A's commit and
// a1, a2 are parked, and B goes on at once: ann reads b1 and sends b2 to
// cat while A waits; a group operation on A and a send to A wait (nothing
// is committed or sent in the old epoch, nothing is spun on). ann's client is then closed (as a killed process:
// the mailbox was acknowledged past the parked deliveries, so only the
// profile holds them); b.example comes back, a new run of ann's profile
// applies A's commit, a1 and a2 in order, once, and sends ann's queued
// message to A in the new epoch.
func TestParkedConversationDoesNotBlockOthers(t *testing.T) {
	srvs := client.NewFedTestServers(t, "a.example", "b.example")
	a, b := srvs[0], srvs[1]
	us := groupUsers(t, a, "ann", "cat", "dan")
	ann, cat, dan := us[0], us[1], us[2]
	ben := groupUsers(t, b, "ben")[0]
	ben2 := newDev(t, b, ben.user)
	ben2.link(groupPW, ben)
	gid, err := ann.c.Groups().Create(ctx30(t), "parked", []string{ben.user, cat.user})
	if err != nil {
		t.Fatal(err)
	}
	cat.send(ann.user, "b0")
	for _, d := range []*dev{ann, ben, ben2, cat} {
		d.drain()
	}

	if err := ann.c.Close(); err != nil { // ann offline
		t.Fatal(err)
	}
	ben.c.PublishListWithout(t, deviceID(ben2))
	cat.send(gid, "a1") // cat's roster check removes ben2 first
	if gi := cat.info(gid); slices.Contains(gi.Devices, ben2.c.Self(t).Address) {
		t.Fatalf("cat did not remove ben2: %q", gi.Devices)
	}
	cat.send(gid, "a2")
	b.Stop() // ben's server
	cat.send(ann.user, "b1")

	ann = restartDev(t, a, ann)
	logs := countLogs(ann)
	got := ann.drain()
	if txt := textsOf(got); !slices.Equal(txt, []string{"b1"}) {
		t.Fatalf("while A waits for ben's list, ann got %q (%+v), want only B's b1", txt, got)
	}
	if n := ann.c.Parked(t, gid); n != 3 {
		t.Fatalf("%d deliveries of A parked, want 3 (the commit, a1, a2)", n)
	}
	if logs.count("a delivery cannot be processed yet") != 1 {
		t.Fatalf("parking logged %d times", logs.count("a delivery cannot be processed yet"))
	}
	ann.send(cat.user, "b2") // a send to B does not wait for A
	if txt := textsOf(cat.drain()); !slices.Equal(txt, []string{"b2"}) {
		t.Fatalf("cat got %q, want b2", txt)
	}

	// Approving a new device of ann's adds it to B and leaves A (parked) to
	// the roster check of a later send, instead of waiting on A.
	ann2 := newDev(t, a, ann.user)
	ann2.link(groupPW, ann)
	if n := logs.count("new device not yet added to a parked conversation"); n != 1 {
		t.Fatalf("the approval skipped a parked conversation %d times, want once", n)
	}
	cat.drain() // the commit adding ann2 to B, before cat sends to B
	cat.send(ann.user, "b3")
	if got := ann2.drain(); !slices.Contains(textsOf(got), "b3") {
		t.Fatalf("ann's new device got %+v, want b3 (logs %v)", got, logs.n)
	}
	if txt := textsOf(ann.drain()); !slices.Equal(txt, []string{"b3"}) {
		t.Fatalf("ann got %q, want b3", txt)
	}
	if n := ann.c.Parked(t, gid); n != 3 {
		t.Fatalf("%d deliveries of A parked after the approval, want 3", n)
	}

	// A group operation on A (ann is its admin) waits for it within its
	// time, and commits nothing on the epoch ann holds.
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	err = ann.c.Groups().AddMembers(ctx, gid, []string{dan.user})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("adding to the parked group returned %v, want to wait until its timeout", err)
	}
	if n := ann.c.Parked(t, gid); n != 3 {
		t.Fatalf("%d deliveries of A parked after the add, want 3", n)
	}

	// A send to A itself waits within its timeout: it is neither sealed in
	// the epoch ann holds (the hub has moved on) nor spun on.
	id, err := ann.c.Queue(gid, "from ann")
	if err != nil {
		t.Fatal(err)
	}
	launches, retries := ann.c.Launches(), logs.count("parked conversation still waits")
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	err = ann.c.Flush(ctx, id)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a send to the parked group returned %v, want to wait until its timeout", err)
	}
	// The outbox backs off (this client: 1 ms doubling to 20 ms, so at
	// most 200 tries in 2 s); the parked group is retried at most once a
	// second (and once by the Flush itself).
	if n := ann.c.Launches() - launches; n > 250 {
		t.Fatalf("the send to the parked group was tried %d times in 2 s", n)
	}
	if n := logs.count("parked conversation still waits") - retries; n < 1 || n > 4 {
		t.Fatalf("the parked group was retried %d times in 2 s, want 1 to 4", n)
	}
	if n := ann.c.Parked(t, gid); n != 3 {
		t.Fatalf("%d deliveries of A parked after the send, want 3", n)
	}
	if out, err := ann.c.Outbox(); err != nil || len(out) != 1 || out[0].ID != id || out[0].Payload != nil {
		t.Fatalf("outbox: %+v, %v; want the message to A queued, not sealed", out, err)
	}

	// Killed before the list can be fetched: the profile holds A's part.
	if err := ann.c.Close(); err != nil {
		t.Fatal(err)
	}
	b.Restart(t)
	ann = restartDev(t, a, ann)
	var texts []string
	var refused int
	deadline := time.Now().Add(30 * time.Second)
	for !slices.Contains(texts, "a2") {
		if time.Now().After(deadline) {
			t.Fatalf("A's parked deliveries not applied after ben's server came back: got %q, %d parked", texts, ann.c.Parked(t, gid))
		}
		got := ann.drain()
		texts = append(texts, textsOf(got)...)
		refused += len(eventsNamed(got, "commit_refused"))
	}
	if !slices.Equal(texts, []string{"a1", "a2"}) || refused > 0 {
		t.Fatalf("after the server came back ann got %q (%d commits refused), want a1, a2 once", texts, refused)
	}
	if n := ann.c.Parked(t, gid); n != 0 {
		t.Fatalf("%d deliveries of A still parked", n)
	}
	if a, c := ann.info(gid), cat.info(gid); a.EpochAuthenticator != c.EpochAuthenticator {
		t.Fatalf("ann and cat in different epochs: %d, %d", a.Epoch, c.Epoch)
	}
	if err := ann.c.Flush(ctx30(t), id); err != nil {
		t.Fatalf("the queued message to A: %v", err)
	}
	if txt := textsOf(cat.drain()); !slices.Equal(txt, []string{"from ann"}) {
		t.Fatalf("cat got %q, want ann's queued message", txt)
	}
	h, err := ann.c.History(gid, 0)
	if err != nil {
		t.Fatal(err)
	}
	if txt := textsOf(h); !slices.Equal(txt, []string{"a1", "a2", "from ann"}) {
		t.Fatalf("ann's history of A: %q, want a1, a2, from ann", txt)
	}
	// The parked messages, once applied, got ann's delivery receipt.
	ch, err := cat.c.History(gid, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ch {
		if (m.Text == "a1" || m.Text == "a2") && !slices.Contains(m.DeliveredTo, ann.user) {
			t.Fatalf("cat's %s shows delivered to %q, want ann among them", m.Text, m.DeliveredTo)
		}
	}
}
