package client_test

import (
	"testing"
	"time"

	"hearth/client"
)

// TestApprovalAddsPendingDeviceAtOnce: a pending device publishes its
// KeyPackages before Login shows its link code, so the approving device
// adds it to its conversations within Approve, although the new device
// is not yet waiting for the approval (nothing to poll for). Once it
// learns it is approved it is in the conversation and receives what
// follows.
func TestApprovalAddsPendingDeviceAtOnce(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	const pw = "correct horse battery"
	A, B := ts.AddUser(t, "alice", pw), ts.AddUser(t, "bob", pw)
	a1, a2, b1 := newDev(t, ts, A), newDev(t, ts, A), newDev(t, ts, B)
	a1.login(pw)
	b1.login(pw)
	a1.send(B, "hello bob")
	b1.recv(A + ":hello bob")

	res := a2.login(pw)
	if res.LinkCode == "" {
		t.Fatalf("second device not pending: %+v", res)
	}
	start := time.Now()
	if _, err := a1.c.Approve(ctx30(t), res.LinkCode); err != nil {
		t.Fatalf("approve: %v", err)
	}
	if n := ts.Welcomes(t, res.DeviceID); n != 1 {
		t.Fatalf("the approved device has %d Welcomes once Approve returned (after %v), want 1: "+
			"it was not added to the conversation", n, time.Since(start).Round(time.Millisecond))
	}
	if err := a2.c.WaitApproval(ctx30(t), 10*time.Millisecond); err != nil {
		t.Fatalf("wait approval: %v", err)
	}
	b1.send(A, "hi both")
	a1.recv(B + ":hi both")
	a2.recv(B + ":hi both")
}
