package client_test

import (
	"testing"

	"hearth/client"
)

// TestSendToGroupBeforeAndAfterAdded: dan sends to a group he is not in
// (refused: the id is no user), and is added later. Sending to the group
// id then goes to the group: the refused send left no conversation that
// takes the group id for a user and shadows the group.
func TestSendToGroupBeforeAndAfterAdded(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "ann", "ben", "dan")
	ann, ben, dan := us[0], us[1], us[2]
	gid, err := ann.c.Groups().Create(ctx30(t), "later", []string{ben.user})
	if err != nil {
		t.Fatal(err)
	}
	ben.drain()
	id, err := dan.c.Queue(gid, "not a member yet")
	if err != nil {
		t.Fatal(err)
	}
	if err := dan.c.Flush(ctx30(t), id); err == nil {
		t.Fatal("a send to a group dan is not in was accepted")
	}
	if err := ann.c.Groups().AddMembers(ctx30(t), gid, []string{dan.user}); err != nil {
		t.Fatal(err)
	}
	dan.drain()
	ben.drain()
	dan.send(gid, "now a member")
	got := ben.drain()
	found := false
	for _, m := range got {
		if m.Text == "now a member" && m.Conversation == gid {
			found = true
		}
	}
	if !found {
		t.Fatalf("ben did not get dan's message in the group: %+v", got)
	}
}
