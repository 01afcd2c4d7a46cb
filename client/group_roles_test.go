package client_test

import (
	"slices"
	"strings"
	"testing"

	"hearth/client"
	"hearth/homeserver/wire"
)

// TestGroupDemoteAndLastAdminLeave: demoting rotates the admin key (the
// demoted admin can no longer act, the others agree on the new key's
// group); the last admin leaving promotes someone first, and the new admin
// commits the leaver's removal.
func TestGroupDemoteAndLastAdminLeave(t *testing.T) {
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
	if ev := events(cj.drain()); !slices.Contains(ev, "promoted:"+bo.user) {
		t.Fatalf("cj events %q", ev)
	}
	bo.drain()
	if err := bo.c.Groups().Rename(ctx30(t), gid, "by bo"); err != nil {
		t.Fatalf("promoted admin cannot rename: %v", err)
	}
	oldSeed := bo.c.AdminSeed(t, gid)
	if oldSeed == nil {
		t.Fatal("promoted admin holds no admin key")
	}
	if err := al.c.Groups().Demote(ctx30(t), gid, bo.user); err != nil {
		t.Fatal(err)
	}
	if err := bo.c.Groups().Rename(ctx30(t), gid, "bo again"); !wire.Is(err, wire.Code_CODE_FORBIDDEN) {
		t.Fatalf("demoted admin rename: %v, want CODE_FORBIDDEN", err)
	}
	if err := bo.c.Groups().RemoveMembers(ctx30(t), gid, []string{cj.user}); !wire.Is(err, wire.Code_CODE_FORBIDDEN) {
		t.Fatalf("demoted admin remove: %v, want CODE_FORBIDDEN", err)
	}
	// A commit signed with the rotated-away key (which bo had) is refused.
	bo.drain()
	req, err := bo.c.RogueCommitSigned(t, gid, []string{cj.user}, oldSeed)
	if err != nil {
		t.Fatal(err)
	}
	if err := bo.c.SendRequest(ctx30(t), req); !wire.Is(err, wire.Code_CODE_FORBIDDEN) {
		t.Fatalf("hub accepted a remove signed with the old admin key: %v", err)
	}
	ev := events(cj.drain())
	if !slices.Contains(ev, "demoted:"+bo.user) {
		t.Fatalf("cj events %q", ev)
	}
	if gi := cj.info(gid); gi.Name != "by bo" || !slices.Equal(gi.Admins, []string{al.user}) {
		t.Fatalf("cj sees %+v", gi)
	}
	// The last admin leaves: another member is promoted first, then
	// commits al's removal.
	if err := al.c.Groups().Leave(ctx30(t), gid); err != nil {
		t.Fatal(err)
	}
	bo.drain()
	cj.drain()
	heir := bo
	if gi := bo.info(gid); !gi.Admin {
		heir = cj
	}
	// Its next Flush (recv runs one first; recv --follow every 10 s)
	// commits the removal of al.
	if err := heir.c.Flush(ctx30(t), ""); err != nil {
		t.Fatal(err)
	}
	other := cj
	if heir == cj {
		other = bo
	}
	if ev := events(other.drain()); !slices.Contains(ev, "member_removed:"+al.user) {
		t.Fatalf("%s events %q", other.user, ev)
	}
	gi, gh := other.info(gid), heir.info(gid)
	if !slices.Equal(gi.Members, []string{bo.user, cj.user}) || !slices.Equal(gi.Admins, []string{heir.user}) ||
		gi.EpochAuthenticator != gh.EpochAuthenticator || !gh.Admin {
		t.Fatalf("after the last admin left: %+v / heir %+v", gi, gh)
	}
	if _, err := al.c.Groups().Info(ctx30(t), gid); !wire.Is(err, wire.Code_CODE_NOT_MEMBER) {
		t.Fatalf("leaver still knows the group: %v", err)
	}
}

// TestGroupDevicesFollowUsers: a member's device linked later is added to
// the group (by any member's next send, no admin needed), a revoked one is
// removed; the over-limit error is clear.
func TestGroupDevicesFollowUsers(t *testing.T) {
	if testing.Short() {
		t.Skip("over 2 s: not in the -short loop")
	}
	ts := client.NewTestServerMaxMembers(t, "a.example", 4)
	us := groupUsers(t, ts, "ed", "flo", "gus", "hal")
	ed, flo, gus, hal := us[0], us[1], us[2], us[3]
	gid, err := ed.c.Groups().Create(ctx30(t), "devs", []string{flo.user})
	if err != nil {
		t.Fatal(err)
	}
	ed.send(gid, "before flo2")
	flo.drain()
	flo2 := newDev(t, ts, flo.user)
	flo2.link(groupPW, flo)
	flo2.drain()
	flo.send(gid, "from flo's first device") // flo (not an admin) adds its new device
	flo2.drain()
	// (The sequence number after the commit adding flo2 is taken by the
	// group description flo forwards to flo2, or by the text.)
	if h := flo2.history(gid); len(h) != 1 || !strings.HasSuffix(h[0], " flo@a.example from flo's first device") {
		t.Fatalf("new device reads history from before it joined: %q", h)
	}
	if gi := flo2.info(gid); gi.Name != "devs" || !slices.Equal(gi.Admins, []string{ed.user}) {
		t.Fatalf("the new device does not know the group's name and admins: %+v", gi)
	}
	ed.send(gid, "hello both")
	if got := flo2.drainTexts(); !slices.Equal(got, []string{"hello both"}) {
		t.Fatalf("flo2 got %q", got)
	}
	if gi := ed.info(gid); len(gi.Devices) != 3 {
		t.Fatalf("devices %q", gi.Devices)
	}
	// Over the limit of 4 devices: adding two more users (two devices).
	if err := ed.c.Groups().AddMembers(ctx30(t), gid, []string{gus.user, hal.user}); !wire.Is(err, wire.Code_CODE_LIMIT) {
		t.Fatalf("over-limit add: %v, want CODE_LIMIT", err)
	}
	if err := ed.c.Groups().AddMembers(ctx30(t), gid, []string{gus.user}); err != nil {
		t.Fatal(err)
	}
	// Revoke flo2: the next send of gus (not an admin) removes it.
	if err := flo.c.Revoke(ctx30(t), deviceID(flo2)); err != nil {
		t.Fatal(err)
	}
	gus.drain()
	gus.send(gid, "after revoke")
	if gi := gus.info(gid); slices.Contains(gi.Devices, flo2.c.Self(t).Address) || len(gi.Devices) != 3 {
		t.Fatalf("revoked device still in the group: %q", gi.Devices)
	}
	if got := ed.drainTexts(); !slices.Contains(got, "after revoke") {
		t.Fatalf("ed got %q", got)
	}
}

func deviceID(d *dev) string {
	a := d.c.Self(d.t).Address
	return a[len(d.user)+1:]
}

// TestGroupAddSplitsLargeCommits: on the default (post-quantum) suite a
// commit adding 12 users (about 64 KB with its Welcome and GroupInfo) does
// not fit a 40 KiB commit limit; the client adds them in smaller commits
// and every member ends in the same group.
func TestGroupAddSplitsLargeCommits(t *testing.T) {
	if testing.Short() {
		t.Skip("over 2 s: not in the -short loop")
	}
	ts := client.NewTestServerCommitLimit(t, "a.example", 64, 40<<10)
	names := []string{"owner"}
	for i := range 12 {
		names = append(names, "p"+string(rune('a'+i)))
	}
	us := groupUsers(t, ts, names...)
	var members []string
	for _, u := range us[1:] {
		members = append(members, u.user)
	}
	gid, err := us[0].c.Groups().Create(ctx30(t), "big-ish", members)
	if err != nil {
		t.Fatal(err)
	}
	want := us[0].info(gid)
	if len(want.Members) != 13 || want.Epoch < 2 {
		t.Fatalf("creator sees %+v (want 13 members added in more than one commit)", want)
	}
	for _, d := range us[1:] {
		d.drain()
		if gi := d.info(gid); gi.EpochAuthenticator != want.EpochAuthenticator || gi.Name != "big-ish" || len(gi.Devices) != 13 {
			t.Fatalf("%s sees %+v", d.user, gi)
		}
	}
}
