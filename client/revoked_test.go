package client_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"hearth/client"
	"hearth/client/convstate"
	"hearth/client/mlsgroup"
)

// TestAdminRevokedDeviceLeavesListAndConversations: an admin revokes
// alice's second device. The server cannot re-sign alice's device list,
// so it tells her online device, which publishes the list without the
// revoked device and removes it from her conversations; bob's messages
// then no longer go to it, and what bob and alice send still arrives.
func TestAdminRevokedDeviceLeavesListAndConversations(t *testing.T) {
	ts, a1, b1, victim := aliceTwoDevicesAndBob(t)
	A, B := a1.user, b1.user
	if !ts.RosterHas(t, "alice", victim) {
		t.Fatal("alice's second device is not in the conversation")
	}

	ts.AdminRevoke(t, "alice", victim)
	// a1's session is up (it just sent): the push reaches it, and it
	// re-signs the list and commits the removal in the background.
	deadline := time.Now().Add(20 * time.Second)
	for {
		listed := false
		devs, err := a1.c.Devices(ctx30(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range devs {
			if d.ID == victim && d.Listed {
				listed = true
			}
		}
		if !listed && !ts.RosterHas(t, "alice", victim) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("revoked device still listed %v or in a conversation %v", listed, ts.RosterHas(t, "alice", victim))
		}
		time.Sleep(20 * time.Millisecond)
	}
	b1.send(A, "after the admin revoke")
	a1.recv(B + ":after the admin revoke")
	a1.send(B, "still here")
	b1.recv(A + ":still here")
}

// TestAdminRevokeFixedAtNextConnection: alice's other device was offline
// when the admin revoked; the next time it connects, HelloOK names the
// device and it takes it off the list.
func TestAdminRevokeFixedAtNextConnection(t *testing.T) {
	ts, a1, b1, victim := aliceTwoDevicesAndBob(t)
	A, B := a1.user, b1.user
	if err := a1.c.Close(); err != nil { // offline
		t.Fatal(err)
	}
	ts.AdminRevoke(t, "alice", victim)
	if !ts.RosterHas(t, "alice", victim) {
		t.Fatal("the roster changed without any device of alice online")
	}
	a1 = reopen(t, ts, a1)
	b1.send(A, "while you were away") // a1 connects to receive it
	a1.recv(B + ":while you were away")
	deadline := time.Now().Add(20 * time.Second)
	for ts.RosterHas(t, "alice", victim) {
		if time.Now().After(deadline) {
			t.Fatal("the revoked device is still in alice's conversation after her device connected")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reopen opens d's profile in a new Client (the old one was closed).
func reopen(t *testing.T, ts *client.TestServer, d *dev) *dev {
	t.Helper()
	c, err := client.Open(client.Config{Profile: d.profile, Dial: ts.Dial(), Groups: mlsgroup.New(),
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &dev{t: t, c: c, user: d.user, profile: d.profile}
}

// aliceTwoDevicesAndBob: alice on two devices and bob, with a
// conversation between them that all three devices hold; it returns
// alice's second device's id.
func aliceTwoDevicesAndBob(t *testing.T) (ts *client.TestServer, a1, b1 *dev, second string) {
	t.Helper()
	ts = client.NewTestServer(t, "a.example")
	const pw = "correct horse battery"
	A, B := ts.AddUser(t, "alice", pw), ts.AddUser(t, "bob", pw)
	a1, a2 := newDev(t, ts, A), newDev(t, ts, A)
	b1 = newDev(t, ts, B)
	a1.login(pw)
	b1.login(pw)
	res := a2.link(pw, a1)
	a1.send(B, "hello bob")
	b1.recv(A + ":hello bob")
	a2.recv(A + ":hello bob")
	return ts, a1, b1, res.DeviceID
}

// TestApproveAndRevokeAfterAdminRevoke: an admin revoked a device of
// alice's that is still on her signed list (none of her devices has
// dropped it yet). Approving a new device and revoking another one from
// a1 sign a new list; the server refuses a list that names a revoked
// device, so both drop the devices the server lists as revoked (the churn
// test's "device list names device … that is not active").
func TestApproveAndRevokeAfterAdminRevoke(t *testing.T) {
	ts, a1, b1, victim := aliceTwoDevicesAndBob(t)
	const pw = "correct horse battery"
	a1.c.HoldRevokedDrop()
	ts.AdminRevoke(t, "alice", victim)

	a3 := newDev(t, ts, a1.user)
	a3.link(pw, a1)
	a4 := newDev(t, ts, a1.user)
	a4.link(pw, a1)
	ts.AdminRevoke(t, "alice", deviceID(a3))
	if err := a1.c.Revoke(ctx30(t), deviceID(a4)); err != nil {
		t.Fatalf("revoke with an admin-revoked device on the list: %v", err)
	}
	devs, err := a1.c.Devices(ctx30(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if want := d.ID == deviceID(a1); d.Listed != want {
			t.Fatalf("device %s (%s) listed %v, want %v", d.ID, d.Status, d.Listed, want)
		}
	}
	a1.send(b1.user, "still fine")
	b1.recv(a1.user + ":still fine")
}

// TestConcurrentReconciles: several roster checks of one conversation run
// at once in one process (a send's, and the background drop of a revoked
// device's). One commits; the others settle that commit and find nothing
// left to do. None may fail with "a commit is already pending" (the long
// churn run lost a message that way: it was kept as failed).
func TestConcurrentReconciles(t *testing.T) {
	ts, a1, b1, _ := aliceTwoDevicesAndBob(t)
	const pw = "correct horse battery"
	conv := ""
	for _, m := range b1.drain() {
		conv = m.Conversation
	}
	for round := 0; round < 6; round++ {
		a1.send(b1.user, fmt.Sprint("round ", round))
		msgs := b1.drain()
		if len(msgs) > 0 {
			conv = msgs[len(msgs)-1].Conversation
		}
		nb := newDev(t, ts, b1.user)
		nb.link(pw, b1)
		nb.drain()
		b1.c.PublishListWithout(t, deviceID(nb)) // a device a1's checks must remove
		errs := make(chan error, 8)
		for i := 0; i < cap(errs); i++ {
			go func() { errs <- a1.c.Reconcile(ctx30(t), conv) }()
		}
		for i := 0; i < cap(errs); i++ {
			if err := <-errs; err != nil && !errors.Is(err, convstate.ErrRedo) {
				t.Fatalf("round %d: concurrent reconcile: %v", round, err)
			}
		}
	}
	a1.send(b1.user, "after")
	b1.recv(a1.user + ":after")
}

// TestUserWithSilentDeviceStaysReachable: ben approves a device that never
// goes on to publish KeyPackages (its owner stopped it before it did; the
// churn test's long run made one when the approval's answer was lost and
// the new device was given up). Claiming ben's KeyPackages must leave that
// device out, not fail for the whole user: cat can still start a 1:1 with
// ben, and ben's first device reads it.
func TestUserWithSilentDeviceStaysReachable(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "ben", "cat")
	ben, cat := us[0], us[1]
	silent := newDev(t, ts, ben.user)
	res := silent.login(groupPW)
	if res.LinkCode == "" {
		t.Fatalf("second device not pending: %+v", res)
	}
	if _, err := ben.c.Approve(ctx30(t), res.LinkCode); err != nil {
		t.Fatal(err)
	}
	// silent never waits for its approval: no KeyPackages, ever.
	cat.send(ben.user, "hello ben")
	ben.recv(cat.user + ":hello ben")
}
