package client_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"hearth/client"
	"hearth/client/mlsgroup"
	"hearth/client/store"
)

// dev is one device profile running the real client with real MLS against
// the real in-process homeserver.
type dev struct {
	t       *testing.T
	c       *client.Client
	user    string
	profile string
}

func ctx30(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newDev(t *testing.T, ts *client.TestServer, user string) *dev {
	t.Helper()
	prof := t.TempDir()
	c, err := client.Open(client.Config{Profile: prof, Dial: ts.Dial(), Groups: mlsgroup.New(),
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &dev{t: t, c: c, user: user, profile: prof}
}

func (d *dev) login(pw string) client.LoginResult {
	d.t.Helper()
	res, err := d.c.Login(ctx30(d.t), client.LoginParams{User: d.user, Password: pw, Server: "pipe", DeviceName: "t"})
	if err != nil {
		d.t.Fatalf("login %s: %v", d.user, err)
	}
	return res
}

// link logs d in as a pending device and approves it from approver.
func (d *dev) link(pw string, approver *dev) client.LoginResult {
	d.t.Helper()
	res := d.login(pw)
	if res.LinkCode == "" {
		d.t.Fatalf("second device not pending: %+v", res)
	}
	done := make(chan error, 1)
	go func() { done <- d.c.WaitApproval(ctx30(d.t), 10*time.Millisecond) }()
	if _, err := approver.c.Approve(ctx30(d.t), res.LinkCode); err != nil {
		d.t.Fatalf("approve: %v", err)
	}
	if err := <-done; err != nil {
		d.t.Fatalf("wait approval: %v", err)
	}
	return res
}

func (d *dev) send(to, text string) {
	d.t.Helper()
	id, err := d.c.Queue(to, text)
	if err != nil {
		d.t.Fatal(err)
	}
	if err := d.c.Flush(ctx30(d.t), id); err != nil {
		d.t.Fatalf("%s send %q: %v", d.user, text, err)
	}
}

func (d *dev) recv(want ...string) {
	d.t.Helper()
	var got []string
	err := d.c.Receive(ctx30(d.t), 300*time.Millisecond, func(m store.Message) error {
		got = append(got, m.From+":"+m.Text)
		return nil
	})
	if err != nil {
		d.t.Fatalf("receive: %v", err)
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		d.t.Fatalf("%s received %q, want %q", d.user, got, want)
	}
}

func (d *dev) historyIDs(peer string) []string {
	d.t.Helper()
	h, err := d.c.History(peer, 0)
	if err != nil {
		d.t.Fatal(err)
	}
	var ids []string
	for _, m := range h {
		ids = append(ids, m.ID)
	}
	return ids
}

// TestMultiDeviceConversation: alice has two devices, bob one; what any
// device sends reaches every other device, alice's own included, once and
// in order. A third device of alice linked later joins the existing
// conversation; a revoked device is removed from it.
func TestMultiDeviceConversation(t *testing.T) {
	if testing.Short() {
		t.Skip("over 2 s: not in the -short loop")
	}
	ts := client.NewTestServer(t, "a.example")
	const pw = "correct horse battery"
	A, B := ts.AddUser(t, "alice", pw), ts.AddUser(t, "bob", pw)
	a1, a2, b1 := newDev(t, ts, A), newDev(t, ts, A), newDev(t, ts, B)
	a1.login(pw)
	b1.login(pw)
	a2.link(pw, a1)

	a1.send(B, "hello bob")
	b1.recv(A + ":hello bob")
	a2.recv(A + ":hello bob")
	b1.send(A, "hi alice")
	a1.recv(B + ":hi alice")
	a2.recv(B + ":hi alice")
	a2.send(B, "from the phone")
	b1.recv(A + ":from the phone")
	a1.recv(A + ":from the phone")

	// A device linked after the conversation started enters it.
	a3 := newDev(t, ts, A)
	a3res := a3.link(pw, a2)
	a3.send(B, "from the tablet")
	b1.recv(A + ":from the tablet")
	a1.recv(A + ":from the tablet")
	a2.recv(A + ":from the tablet")
	b1.send(A, "welcome tablet")
	for _, d := range []*dev{a1, a2, a3} {
		d.recv(B + ":welcome tablet")
	}

	// Revoke a3: bob's next message no longer reaches it.
	if err := a1.c.Revoke(ctx30(t), a3res.DeviceID); err != nil {
		t.Fatal(err)
	}
	b1.send(A, "after revoke")
	a1.recv(B + ":after revoke")
	a2.recv(B + ":after revoke")

	want := strings.Join(b1.historyIDs(A), ",")
	for i, d := range []*dev{a1, a2} {
		if got := strings.Join(d.historyIDs(B), ","); got != want {
			t.Fatalf("device %d history %s, bob's %s", i+1, got, want)
		}
	}
	if h, _ := b1.c.History(A, 0); len(h) != 6 {
		t.Fatalf("bob's history has %d messages, want 6: %+v", len(h), h)
	}
}

// TestBadMessageDoesNotWedge: a member's garbage (not MLS, or MLS that
// does not decrypt) is skipped and acknowledged; what follows arrives.
func TestBadMessageDoesNotWedge(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	const pw = "correct horse battery"
	A, B := ts.AddUser(t, "alice", pw), ts.AddUser(t, "bob", pw)
	a1, b1 := newDev(t, ts, A), newDev(t, ts, B)
	a1.login(pw)
	b1.login(pw)
	a1.send(B, "hello")
	b1.recv(A + ":hello")
	for _, junk := range [][]byte{{0, 1, 2, 3}, make([]byte, 300)} {
		if err := a1.c.SendRaw(ctx30(t), B, junk); err != nil {
			t.Fatal(err)
		}
	}
	// bob is told, not silently: two messages could not be decrypted.
	a1.send(B, "still here")
	b1.recv(A+":still here", B+":2 message(s) could not be decrypted: damaged or replayed")
	b1.send(A, "and back")
	a1.recv(B + ":and back")
}
