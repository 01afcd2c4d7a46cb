package client_test

import (
	"strings"
	"testing"

	"hearth/client"
	"hearth/homeserver/wire"
)

// TestRemovedCoAdminLearnsRemoval: an admin removes a co-admin (the admin
// key is rotated away from it in the same commit); the removed device
// learns it was removed (a "removed" event, no refused commit), its sends
// fail clearly, and the others go on.
func TestRemovedCoAdminLearnsRemoval(t *testing.T) {
	if testing.Short() {
		t.Skip("over 2 s: not in the -short loop")
	}
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "al", "bo", "cj")
	al, bo, cj := us[0], us[1], us[2]
	gid, err := al.c.Groups().Create(ctx30(t), "g", []string{bo.user, cj.user})
	if err != nil {
		t.Fatal(err)
	}
	bo.drain()
	cj.drain()
	if err := al.c.Groups().Promote(ctx30(t), gid, bo.user); err != nil {
		t.Fatal(err)
	}
	bo.drain()
	cj.drain()
	if err := al.c.Groups().RemoveMembers(ctx30(t), gid, []string{bo.user}); err != nil {
		t.Fatal(err)
	}
	got := bo.drain()
	for _, m := range got {
		if m.Event == "commit_refused" {
			t.Fatalf("the removed co-admin refused the commit that removed it: %+v", m)
		}
	}
	if ev := eventsNamed(got, "removed"); len(ev) != 1 || ev[0].Conversation != gid || !strings.Contains(ev[0].Text, "no longer a member") {
		t.Fatalf("the removed co-admin got %+v, want one removed event", events(got))
	}
	if _, err := bo.c.Queue(gid, "after removal"); err == nil {
		err = bo.c.Flush(ctx30(t), "")
		if err == nil {
			t.Fatal("a removed co-admin's send succeeded")
		}
	} else if !wire.Is(err, wire.Code_CODE_NOT_MEMBER) && !strings.Contains(err.Error(), "no longer a member") {
		t.Fatalf("a removed co-admin's send: %v", err)
	}
	cj.drain()
	if _, err := al.c.Queue(gid, "still works"); err != nil {
		t.Fatal(err)
	}
	if err := al.c.Flush(ctx30(t), ""); err != nil {
		t.Fatal(err)
	}
	if txt := textsOf(cj.drain()); len(txt) != 1 || txt[0] != "still works" {
		t.Fatalf("cj got %q", txt)
	}
}

// TestReplayedGroupDescriptionIgnored: a member that replays an older
// admin-signed description (the group's previous name) changes nothing for
// the others: a description signed in an earlier epoch than the one held
// is ignored.
func TestReplayedGroupDescriptionIgnored(t *testing.T) {
	if testing.Short() {
		t.Skip("over 2 s: not in the -short loop")
	}
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "al", "bo", "cj")
	al, bo, cj := us[0], us[1], us[2]
	gid, err := al.c.Groups().Create(ctx30(t), "first name", []string{bo.user, cj.user})
	if err != nil {
		t.Fatal(err)
	}
	bo.drain()
	cj.drain()
	old := bo.c.SignedMeta(t, gid)
	if len(old) == 0 {
		t.Fatal("bo holds no signed description")
	}
	// A commit moves the epoch on, then the admin renames the group.
	if err := al.c.Groups().RemoveMembers(ctx30(t), gid, []string{cj.user}); err != nil {
		t.Fatal(err)
	}
	if err := al.c.Groups().AddMembers(ctx30(t), gid, []string{cj.user}); err != nil {
		t.Fatal(err)
	}
	if err := al.c.Groups().Rename(ctx30(t), gid, "second name"); err != nil {
		t.Fatal(err)
	}
	bo.drain()
	cj.drain()
	if gi := cj.info(gid); gi.Name != "second name" {
		t.Fatalf("cj sees %q", gi.Name)
	}
	bo.c.ReplayMeta(t, gid, old)
	if err := bo.c.Flush(ctx30(t), ""); err != nil {
		t.Fatal(err)
	}
	if ev := events(cj.drain()); len(ev) != 0 {
		t.Fatalf("the replayed description made events on cj: %q", ev)
	}
	al.drain()
	for _, d := range []*dev{al, cj} {
		if gi := d.info(gid); gi.Name != "second name" {
			t.Fatalf("%s sees the name %q after a replay", d.user, gi.Name)
		}
	}
}
