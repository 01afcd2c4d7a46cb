package client_test

import (
	"slices"
	"testing"
	"time"

	"hearth/client"
	"hearth/client/store"
)

// TestGroupOpHealsFirst: an admin whose state of a group is stale (a
// backup from before ben's second device was added) adds a member. The
// operation catches up, finds the group out of step, rejoins it and then
// commits the addition, instead of losing every commit to the hub as
// stale until a recv or send has healed it.
func TestGroupOpHealsFirst(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "ann", "ben", "cat", "dan")
	ann, ben, cat, dan := us[0], us[1], us[2], us[3]
	gid, err := ann.c.Groups().Create(ctx30(t), "heal first", []string{ben.user, cat.user})
	if err != nil {
		t.Fatal(err)
	}
	ben.drain()
	cat.drain()
	old := ann.c.GroupState(t, gid)
	ben2 := newDev(t, ts, ben.user)
	ben2.link(groupPW, ben) // ben's device adds ben2: a commit ann's old state lacks
	ann.drain()
	ben2.drain()
	ann.c.RestoreGroupState(t, gid, old)
	ben.send(gid, "after ben2") // of an epoch ann's state does not have

	if err := ann.c.Groups().AddMembers(ctx30(t), gid, []string{dan.user}); err != nil {
		t.Fatalf("add by an out-of-step admin: %v", err)
	}
	if _, ok := ann.c.OutOfStep(t, gid); ok {
		t.Fatal("still out of step after the add")
	}
	dan.drain()
	if gi := dan.info(gid); !slices.Contains(gi.Members, dan.user) || !slices.Contains(gi.Members, ben.user) {
		t.Fatalf("dan's view of the group: %+v", gi)
	}
	ann.send(gid, "welcome dan")
	for _, d := range []*dev{ben, ben2, cat, dan} {
		if got := textsOf(d.drain()); !slices.Contains(got, "welcome dan") {
			t.Fatalf("%s got %q", d.user, got)
		}
	}
}

// TestGroupAdminNewDeviceGetsAdminKey: a device of the admin, linked
// after the group was made, is added to the group by the approving device
// with the admin key sealed to it, so it can act as admin at once (before,
// it got the key only with the admin's next group change, and `group add`
// on it failed with "not an admin").
func TestGroupAdminNewDeviceGetsAdminKey(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "ann", "ben", "cat")
	ann, ben, cat := us[0], us[1], us[2]
	gid, err := ann.c.Groups().Create(ctx30(t), "admins", []string{ben.user})
	if err != nil {
		t.Fatal(err)
	}
	ben.drain()
	ann2 := newDev(t, ts, ann.user)
	ann2.link(groupPW, ann)
	ann2.drain()
	if gi := ann2.info(gid); !gi.Admin {
		t.Fatalf("the admin's new device does not hold the admin key: %+v", gi)
	}
	if err := ann2.c.Groups().AddMembers(ctx30(t), gid, []string{cat.user}); err != nil {
		t.Fatalf("add by the admin's new device: %v", err)
	}
	cat.drain()
	if gi := cat.info(gid); !slices.Contains(gi.Members, cat.user) {
		t.Fatalf("cat's view: %+v", gi)
	}
}

// TestGroupAdminDeviceSharesKeyOnCommit: an admin's device that processes
// a commit adding a device of an admin user (here another device of its
// own user, added by the approving device) queues a meta message sealing
// the admin key to it, so the new device gets the key even when the
// device that added it did not send one; a commit adding a device of a
// user who is not an admin queues nothing.
func TestGroupAdminDeviceSharesKeyOnCommit(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "ann", "ben")
	ann, ben := us[0], us[1]
	annA := newDev(t, ts, ann.user)
	annA.link(groupPW, ann)
	gid, err := ann.c.Groups().Create(ctx30(t), "share", []string{ben.user})
	if err != nil {
		t.Fatal(err)
	}
	annA.drain()
	ben.drain()
	if !annA.info(gid).Admin {
		t.Fatal("annA does not hold the admin key")
	}
	queuedSyncs := func(d *dev) int {
		n := 0
		d.c.Store().View(func(tx *store.Tx) error {
			items, err := tx.Outbox()
			for _, it := range items {
				if it.Conversation == gid && it.Control != nil {
					n++
				}
			}
			return err
		})
		return n
	}
	var done uint64 // annA's mailbox entries handed in (or drained) so far
	for _, dl := range ts.MailboxPayloads(t, deviceID(annA), gid) {
		done = max(done, dl.GetSeq())
	}
	deliverNew := func(d *dev) {
		t.Helper()
		for _, dl := range ts.MailboxPayloads(t, deviceID(d), gid) {
			if dl.GetSeq() <= done {
				continue
			}
			done = dl.GetSeq()
			if err := d.c.Deliver(ctx30(t), dl); err != nil {
				t.Fatal(err)
			}
		}
	}

	ben2 := newDev(t, ts, ben.user)
	ben2.link(groupPW, ben) // a non-admin user's new device
	deliverNew(annA)
	if n := queuedSyncs(annA); n != 0 {
		t.Fatalf("%d control messages queued after a non-admin's device was added", n)
	}
	ann3 := newDev(t, ts, ann.user)
	ann3.link(groupPW, ann)
	deliverNew(annA)
	if n := queuedSyncs(annA); n != 1 {
		t.Fatalf("%d control messages queued after the admin's new device was added, want 1", n)
	}
	annA.drain()
	if err := annA.c.Flush(ctx30(t), ""); err != nil { // as every recv and send does
		t.Fatal(err)
	}
	if n := queuedSyncs(annA); n != 0 {
		t.Fatalf("%d control messages still queued after a flush", n)
	}
	ann3.drain()
	if !ann3.info(gid).Admin {
		t.Fatal("ann3 does not hold the admin key")
	}
}

// TestCommitCheckWaitsForUnfetchedList: cat (not an admin) removes ben2,
// which ben's list no longer names, in an ordinary commit. ann checks that
// removal against ben's list and cannot fetch it (its server unreachable a
// moment ago; the churn test's long run hit this right after a server
// restart). ann used to refuse the commit, fall out of step and lose what
// followed; she now parks it and processes it again once the list can be
// fetched.
func TestCommitCheckWaitsForUnfetchedList(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "ann", "ben", "cat")
	ann, ben, cat := us[0], us[1], us[2]
	ben2 := newDev(t, ts, ben.user)
	ben2.link(groupPW, ben)
	gid, err := ann.c.Groups().Create(ctx30(t), "unfetched", []string{ben.user, cat.user})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []*dev{ann, ben, ben2, cat} {
		d.drain()
	}
	logs := countLogs(ann)
	ann.c.SetDomainUnreachable(t, "a.example", time.Now().Add(time.Hour))
	ben.c.PublishListWithout(t, deviceID(ben2))
	cat.send(gid, "from cat") // cat's roster check removes ben2 first
	if gi := cat.info(gid); slices.Contains(gi.Devices, ben2.c.Self(t).Address) {
		t.Fatalf("cat did not remove ben2: %q", gi.Devices)
	}
	// ann's live session gets the commit while ben's list cannot be fetched.
	for deadline := time.Now().Add(10 * time.Second); logs.count("a commit cannot be checked yet")+logs.count("refusing a commit") == 0; {
		if time.Now().After(deadline) {
			t.Fatal("ann did not process cat's commit")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ann.c.SetDomainUnreachable(t, "a.example", time.Time{})
	var got []store.Message
	for deadline := time.Now().Add(10 * time.Second); len(textsOf(got)) == 0; { // parked: applied at its retry
		if time.Now().After(deadline) {
			t.Fatalf("ann did not apply the commit once the list could be fetched (%d parked)", ann.c.Parked(t, gid))
		}
		got = append(got, ann.drain()...)
	}
	if ev := eventsNamed(got, "commit_refused"); len(ev) > 0 {
		t.Fatalf("ann refused the commit: %+v", ev)
	}
	if txt := textsOf(got); !slices.Equal(txt, []string{"from cat"}) {
		t.Fatalf("ann got %q (%+v)", txt, got)
	}
	if a, c := ann.info(gid), cat.info(gid); a.EpochAuthenticator != c.EpochAuthenticator {
		t.Fatalf("ann and cat in different epochs: %d, %d", a.Epoch, c.Epoch)
	}
}
