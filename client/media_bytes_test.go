package client_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"hearth/client"
	"hearth/homeserver/wire"
)

// TestQueueBytes: a file handed over as bytes (the web client's upload)
// reaches bob with its name, guessed type and SHA-256, and fetches
// byte-identical; a bad name or recipient is refused and queues nothing.
func TestQueueBytes(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	const pw = "correct horse battery"
	A, B := ts.AddUser(t, "alice", pw), ts.AddUser(t, "bob", pw)
	alice, bob := newDev(t, ts, A), newDev(t, ts, B)
	alice.login(pw)
	bob.login(pw)

	file := make([]byte, 600<<10+7)
	rand.Read(file)
	id, sent, err := alice.c.QueueBytes(ctx30(t), B, "photo.png", "", file)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.c.Flush(ctx30(t), id); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(file)
	got := receiveAll(t, bob)
	if len(got) != 1 || got[0].ID != id || got[0].Media == nil {
		t.Fatalf("bob received %+v", got)
	}
	ref := *got[0].Media
	if ref != sent {
		t.Fatalf("received reference %+v, sent %+v", ref, sent)
	}
	if ref.Name != "photo.png" || ref.Type != "image/png" || ref.Size != int64(len(file)) || ref.PlainSHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("reference %+v", ref)
	}
	var out bytes.Buffer
	if err := bob.c.FetchMedia(ctx30(t), ref, &out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), file) {
		t.Fatal("fetched file differs")
	}
	for _, c := range []struct{ to, name string }{{B, "a/b.png"}, {B, ""}, {"", "x.png"}, {"nobody", "x.png"}} {
		if _, _, err := alice.c.QueueBytes(ctx30(t), c.to, c.name, "", file); err == nil {
			t.Errorf("to %q name %q: accepted", c.to, c.name)
		} else if c.to != "nobody" && !wire.Is(err, wire.Code_CODE_BAD_REQUEST) {
			t.Errorf("to %q name %q: %v, want a bad request", c.to, c.name, err)
		}
	}
	if out, err := alice.c.Outbox(); err != nil || len(out) != 0 {
		t.Fatalf("outbox after refusals: %d items, %v", len(out), err)
	}
}

// TestGroupList: a group is listed with its name on the creator's and the
// member's devices before any message; the settings group is not.
func TestGroupList(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "al", "bo")
	al, bo := us[0], us[1]
	gid, err := al.c.Groups().Create(ctx30(t), "book club", []string{bo.user})
	if err != nil {
		t.Fatal(err)
	}
	bo.drain()
	if err := al.c.SetSetting(ctx30(t), "read-receipts", "off"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*dev{al, bo} {
		got, err := d.c.GroupList()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0] != (client.GroupEntry{ID: gid, Name: "book club"}) {
			t.Fatalf("%s lists groups %+v, want only %s (book club)", d.user, got, gid)
		}
	}
}

// TestUnread: the messages of others past this user's read mark are
// unread; marking read on another device of the user clears them here.
func TestUnread(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	const pw = "correct horse battery"
	A, B := ts.AddUser(t, "alice", pw), ts.AddUser(t, "bob", pw)
	a1, bob := newDev(t, ts, A), newDev(t, ts, B)
	a1.login(pw)
	bob.login(pw)
	a2 := newDev(t, ts, A)
	a2.link(pw, a1)
	a1.send(B, "hi bob")
	receiveAll(t, bob)
	bob.send(A, "one")
	bob.send(A, "two")
	got := receiveAll(t, a1)
	receiveAll(t, a2)
	if len(got) == 0 {
		t.Fatal("alice received nothing")
	}
	conv := got[len(got)-1].Conversation
	for _, d := range []*dev{a1, a2} {
		if n, err := d.c.Unread(conv); err != nil || n != 2 {
			t.Fatalf("unread on %s: %d, %v; want 2 (alice's own message is not unread)", d.user, n, err)
		}
	}
	mark, err := a1.c.MarkRead(conv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := a1.c.Flush(ctx30(t), mark.ReceiptID); err != nil {
		t.Fatal(err)
	}
	receiveAll(t, a2)
	for _, d := range []*dev{a1, a2} {
		if n, err := d.c.Unread(conv); err != nil || n != 0 {
			t.Fatalf("unread on %s after reading on alice's first device: %d, %v", d.user, n, err)
		}
	}
}
