package client_test

import (
	"slices"
	"testing"

	"hearth/client"
)

// TestWelcomeNotOpenedRejoinsAtOnce: a Welcome that cannot be opened (its
// GroupInfo cut short on the way, or a Welcome the adding member made
// unreadable) leaves the added device a member at the hub with no state.
// Here ann links a new device, whose approval adds it to ann's 1:1 with
// ben, and the new device's Welcome is damaged while it is offline (as
// `hearth chat login` exits once approved). The device marks the
// conversation out of step at once and rejoins it when it is caught up,
// so that ben's next message reaches it. Before, a Welcome that failed
// left no trace: the device found out only when ben's message failed for
// want of a state, and lost it.
func TestWelcomeNotOpenedRejoinsAtOnce(t *testing.T) {
	for _, field := range []string{"group_info", "welcome"} {
		t.Run(field, func(t *testing.T) {
			ts := client.NewTestServer(t, "a.example")
			us := groupUsers(t, ts, "ann", "ben")
			ann, ben := us[0], us[1]
			ann.send(ben.user, "hello")
			got := ben.drain()
			if len(got) != 1 || got[0].Text != "hello" {
				t.Fatalf("ben got %+v", got)
			}
			conv := got[0].Conversation

			ann2 := newDev(t, ts, ann.user)
			ann2.link(groupPW, ann) // ann's device adds ann2 to the 1:1
			ann2.c.Close()          // offline: its Welcome waits in the mailbox, where it is damaged
			if n := ts.DamageWelcomes(t, conv, field); n == 0 {
				t.Fatal("no Welcome to damage")
			}
			ann2 = reopen(t, ts, ann2)
			ann2.drain() // the Welcome fails; the conversation is rejoined
			if o, ok := ann2.c.OutOfStep(t, conv); ok {
				t.Fatalf("still out of step after catching up: %+v", o)
			}
			if !ann2.c.HasGroup(t, conv) {
				t.Fatal("no state of the conversation after catching up")
			}
			ben.send(ann.user, "after the damaged welcome")
			for _, d := range []*dev{ann, ann2} {
				got := d.drain()
				if txt := textsOf(got); !slices.Contains(txt, "after the damaged welcome") {
					t.Fatalf("%s got %q", d.user, txt)
				}
				if ev := eventsNamed(got, "undecryptable"); len(ev) > 0 {
					t.Fatalf("%s: %s", d.user, ev[0].Text)
				}
			}
		})
	}
}

// TestWelcomeNotOpenedAfterRemoval: ben, removed from a group (gone on
// his device), is added again while offline, and the Welcome of the new
// add does not open. His device rejoins the group instead of keeping it
// as gone, and ann's next message reaches him.
func TestWelcomeNotOpenedAfterRemoval(t *testing.T) {
	t.Run("state kept", func(t *testing.T) { welcomeNotOpenedAfterRemoval(t, false) })
	// The state the device kept from before its removal does not load
	// either: the device rejoins all the same (the Welcome's failure
	// must not become one of the mailbox, retried for ever).
	t.Run("state damaged", func(t *testing.T) { welcomeNotOpenedAfterRemoval(t, true) })
}

func welcomeNotOpenedAfterRemoval(t *testing.T, damageState bool) {
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "ann", "ben", "cat")
	ann, ben, cat := us[0], us[1], us[2]
	gid, err := ann.c.Groups().Create(ctx30(t), "again", []string{ben.user, cat.user})
	if err != nil {
		t.Fatal(err)
	}
	ben.drain()
	cat.drain()
	if err := ann.c.Groups().RemoveMembers(ctx30(t), gid, []string{ben.user}); err != nil {
		t.Fatal(err)
	}
	ben.drain()
	if !ben.c.Gone(t, gid) {
		t.Fatal("ben's device does not hold the group as gone after his removal")
	}
	if damageState {
		ben.c.DamageGroupState(t, gid)
	}
	ben.c.Close()
	if err := ann.c.Groups().AddMembers(ctx30(t), gid, []string{ben.user}); err != nil {
		t.Fatal(err)
	}
	if n := ts.DamageWelcomes(t, gid, "welcome"); n == 0 {
		t.Fatal("no Welcome to damage")
	}
	ben = reopen(t, ts, ben)
	ben.drain()
	if ben.c.Gone(t, gid) {
		t.Fatal("ben's device still holds the group as gone after being added again")
	}
	if !ben.c.HasGroup(t, gid) {
		t.Fatal("ben holds no state of the group after catching up")
	}
	cat.drain()
	ann.send(gid, "welcome back")
	if got := textsOf(ben.drain()); !slices.Contains(got, "welcome back") {
		t.Fatalf("ben got %q", got)
	}
	// The description sent with the add did not reach him (it followed
	// the Welcome): the admin sent it again when he rejoined.
	if name := ben.info(gid).Name; name != "again" {
		t.Fatalf("ben sees the group named %q", name)
	}
}

// TestDamagedStateHeals: a device whose stored state of a conversation
// no longer loads (a damaged profile) skips that conversation's
// deliveries, counts them, and rejoins; the other conversations and the
// next message go on. Before, the load's error failed every batch that
// held a delivery of the conversation: the mailbox stood still.
func TestDamagedStateHeals(t *testing.T) {
	ann, ben, conv := damagedOneToOne(t)
	ann.send(ben.user, "two") // lost to ben: his state does not load
	got := ben.drain()
	if ev := eventsNamed(got, "undecryptable"); len(ev) != 1 {
		t.Fatalf("ben's events %+v; want the lost message counted", got)
	}
	if _, ok := ben.c.OutOfStep(t, conv); ok {
		t.Fatal("ben still out of step after catching up")
	}
	ann.send(ben.user, "three")
	if txt := textsOf(ben.drain()); !slices.Contains(txt, "three") {
		t.Fatalf("ben got %q", txt)
	}
}

// damagedOneToOne sets up ann and ben's 1:1 with one message and damages
// ben's stored state of it.
func damagedOneToOne(t *testing.T) (ann, ben *dev, conv string) {
	t.Helper()
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "ann", "ben")
	ann, ben = us[0], us[1]
	ann.send(ben.user, "one")
	got := ben.drain()
	if len(got) != 1 {
		t.Fatalf("ben got %+v", got)
	}
	conv = got[0].Conversation
	ben.c.DamageGroupState(t, conv)
	return ann, ben, conv
}

// TestDamagedOwnStateHealsOnSend: a device whose own stored state of a
// conversation does not load rejoins it when it sends, and the message
// reaches the peer, instead of every send failing.
func TestDamagedOwnStateHealsOnSend(t *testing.T) {
	ann, ben, conv := damagedOneToOne(t)
	ben.send(ann.user, "two") // fails the test if the send fails
	if txt := textsOf(ann.drain()); !slices.Contains(txt, "two") {
		t.Fatalf("ann got %q", txt)
	}
	if _, ok := ben.c.OutOfStep(t, conv); ok {
		t.Fatal("ben still out of step after the send")
	}
	ann.send(ben.user, "three")
	if txt := textsOf(ben.drain()); !slices.Contains(txt, "three") {
		t.Fatalf("ben got %q", txt)
	}
}

// TestDamagedOwnStateHealsBeforeGroupOp: an admin whose own stored state
// of a group does not load rejoins it before a group operation (an add,
// a rename), and the operation and the next message reach the members.
func TestDamagedOwnStateHealsBeforeGroupOp(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "ann", "ben", "cat")
	ann, ben, cat := us[0], us[1], us[2]
	gid, err := ann.c.Groups().Create(ctx30(t), "mended", []string{ben.user})
	if err != nil {
		t.Fatal(err)
	}
	ben.drain()
	ann.c.DamageGroupState(t, gid)
	if err := ann.c.Groups().AddMembers(ctx30(t), gid, []string{cat.user}); err != nil {
		t.Fatalf("add with a damaged state: %v", err)
	}
	if err := ann.c.Groups().Rename(ctx30(t), gid, "mended twice"); err != nil {
		t.Fatalf("rename: %v", err)
	}
	ann.send(gid, "all three")
	for _, d := range []*dev{ben, cat} {
		if txt := textsOf(d.drain()); !slices.Contains(txt, "all three") {
			t.Fatalf("%s got %q", d.user, txt)
		}
		if name := d.info(gid).Name; name != "mended twice" {
			t.Fatalf("%s sees the group named %q", d.user, name)
		}
	}
}
