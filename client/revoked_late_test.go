package client_test

import (
	"testing"

	"hearth/client"
)

// TestWelcomeWithMemberRevokedSince: alice's first message to bob makes a
// conversation with her two devices; a2 is revoked before bob reads the
// Welcome. The Welcome was valid when the hub accepted it (alice's list
// moved on after), so bob joins and reads alice's message; a2 is removed
// before bob sends.
func TestWelcomeWithMemberRevokedSince(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	const pw = "correct horse battery"
	A, B := ts.AddUser(t, "alice", pw), ts.AddUser(t, "bob", pw)
	a1, a2, b1 := newDev(t, ts, A), newDev(t, ts, A), newDev(t, ts, B)
	a1.login(pw)
	b1.login(pw)
	a2res := a2.link(pw, a1)
	if err := b1.c.Close(); err != nil { // offline
		t.Fatal(err)
	}

	a1.send(B, "hello bob")
	if err := a1.c.Revoke(ctx30(t), a2res.DeviceID); err != nil {
		t.Fatal(err)
	}
	b1 = reopen(t, ts, b1)
	b1.recv(A + ":hello bob")
	b1.send(A, "hi alice")
	a1.recv(B + ":hi alice")
	if ts.RosterHas(t, "alice", a2res.DeviceID) {
		t.Fatal("the revoked device is still in the conversation")
	}
}

// TestMessageFromDeviceRevokedSince: a2 joins alice's conversation with
// bob and sends; alice then revokes a2. Bob reads all of it only after the
// revocation: a2's message was accepted by the hub before alice's list
// dropped a2, so bob shows it (the list was signed after it).
func TestMessageFromDeviceRevokedSince(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	const pw = "correct horse battery"
	A, B := ts.AddUser(t, "alice", pw), ts.AddUser(t, "bob", pw)
	a1, a2, b1 := newDev(t, ts, A), newDev(t, ts, A), newDev(t, ts, B)
	a1.login(pw)
	b1.login(pw)
	a1.send(B, "hello bob")
	b1.recv(A + ":hello bob")
	if err := b1.c.Close(); err != nil { // offline
		t.Fatal(err)
	}

	a2res := a2.link(pw, a1)
	a2.send(B, "from the phone")
	if err := a1.c.Revoke(ctx30(t), a2res.DeviceID); err != nil {
		t.Fatal(err)
	}
	b1 = reopen(t, ts, b1)
	b1.recv(A + ":from the phone")
	b1.send(A, "hi alice")
	a1.recv(A+":from the phone", B+":hi alice")
}
