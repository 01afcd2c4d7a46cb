package client_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hearth/client"
	"hearth/client/mlsgroup"
	"hearth/client/store"
	"hearth/homeserver/wire"
)

const groupPW = "correct horse battery"

// users makes n users on ts, each with one logged-in device that has
// published its KeyPackages.
func groupUsers(t *testing.T, ts *client.TestServer, names ...string) []*dev {
	t.Helper()
	var out []*dev
	for _, n := range names {
		d := newDev(t, ts, ts.AddUser(t, n, groupPW))
		d.login(groupPW)
		d.drain()
		out = append(out, d)
	}
	return out
}

// drain receives everything pending and returns it.
func (d *dev) drain() []store.Message {
	d.t.Helper()
	var got []store.Message
	err := d.c.Receive(ctx30(d.t), 200*time.Millisecond, func(m store.Message) error { got = append(got, m); return nil })
	if err != nil {
		d.t.Fatalf("%s receive: %v", d.user, err)
	}
	return got
}

func (d *dev) info(conv string) client.GroupInfo {
	d.t.Helper()
	gi, err := d.c.Groups().Info(ctx30(d.t), conv)
	if err != nil {
		d.t.Fatalf("%s group info: %v", d.user, err)
	}
	return gi
}

func (d *dev) history(conv string) []string {
	d.t.Helper()
	h, err := d.c.History(conv, 0)
	if err != nil {
		d.t.Fatal(err)
	}
	var out []string
	for _, m := range h {
		out = append(out, fmt.Sprintf("%d %s %s", m.Seq, m.From, m.Text))
	}
	return out
}

func events(ms []store.Message) []string {
	var out []string
	for _, m := range ms {
		if m.Event != "" {
			out = append(out, m.Event+":"+m.User+m.Text)
		}
	}
	return out
}

// TestGroupSixUsersOrder: a group of six users (two with two devices) is
// created with its name; three members send concurrently; every device
// ends with the same ordered history and the same view of the group.
func TestGroupSixUsersOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("over 2 s: not in the -short loop")
	}
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "u0", "u1", "u2", "u3", "u4", "u5")
	u0b, u1b := newDev(t, ts, us[0].user), newDev(t, ts, us[1].user)
	u0b.link(groupPW, us[0])
	u1b.link(groupPW, us[1])
	u0b.drain()
	u1b.drain()
	all := append(slices.Clone(us), u0b, u1b)
	var members []string
	for _, u := range us[1:] {
		members = append(members, u.user)
	}
	gid, err := us[0].c.Groups().Create(ctx30(t), "six", members)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range all[1:] {
		d.drain()
	}
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for _, s := range []*dev{us[0], us[2], u1b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5 {
				id, err := s.c.Queue(gid, fmt.Sprintf("%s-%d", s.user, i))
				if err == nil {
					err = s.c.Flush(ctx30(t), id)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all[0].drain()
	want := all[0].history(gid)
	if len(want) != 15 {
		t.Fatalf("creator history has %d messages, want 15: %q", len(want), want)
	}
	wi := all[0].info(gid)
	if wi.Name != "six" || len(wi.Members) != 6 || len(wi.Devices) != 8 || !slices.Equal(wi.Admins, []string{us[0].user}) {
		t.Fatalf("group info %+v", wi)
	}
	for _, d := range all[1:] {
		d.drain()
		if got := d.history(gid); !slices.Equal(got, want) {
			t.Fatalf("%s history differs:\n%q\nwant\n%q", d.user, got, want)
		}
		gi := d.info(gid)
		if gi.Name != wi.Name || gi.Epoch != wi.Epoch || gi.EpochAuthenticator != wi.EpochAuthenticator ||
			!slices.Equal(gi.Devices, wi.Devices) || !slices.Equal(gi.Admins, wi.Admins) {
			t.Fatalf("%s sees %+v, creator %+v", d.user, gi, wi)
		}
	}
}

// TestGroupRemoveAndJoinSecrecy: a removed member gets nothing after its
// removal and cannot decrypt later ciphertexts with the state it had; a
// member added later cannot decrypt what was sent before it joined.
func TestGroupRemoveAndJoinSecrecy(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "ann", "ben", "cat", "dan")
	ann, ben, cat, dan := us[0], us[1], us[2], us[3]
	gid, err := ann.c.Groups().Create(ctx30(t), "secrets", []string{ben.user, cat.user})
	if err != nil {
		t.Fatal(err)
	}
	cat.drain()
	ben.drain()
	ann.send(gid, "before")
	catOld := cat.c.GroupState(t, gid)
	if got := events(cat.drain()); len(got) != 0 {
		t.Fatalf("cat events %q", got)
	}
	if err := ann.c.Groups().RemoveMembers(ctx30(t), gid, []string{cat.user}); err != nil {
		t.Fatal(err)
	}
	ann.send(gid, "after")
	if err := ann.c.Groups().AddMembers(ctx30(t), gid, []string{dan.user}); err != nil {
		t.Fatal(err)
	}
	ann.send(gid, "with dan")
	got := cat.drain()
	if ev := events(got); !slices.Equal(ev, []string{"member_removed:" + cat.user, "removed:" + cat.user + "you are no longer a member of " + gid}) {
		t.Fatalf("cat got events %q", ev)
	}
	for _, m := range got {
		if m.Text == "after" || m.Text == "with dan" {
			t.Fatalf("removed member received %q", m.Text)
		}
	}
	if ev := events(ben.drain()); !slices.Contains(ev, "member_removed:"+cat.user) || !slices.Contains(ev, "member_added:"+dan.user) {
		t.Fatalf("ben events %q", ev)
	}
	dan.drain()
	if h := dan.history(gid); len(h) != 1 || !strings.HasSuffix(h[0], "with dan") {
		t.Fatalf("dan history %q", h)
	}
	// The ciphertexts as the server relayed them to ben.
	dl := ts.MailboxPayloads(t, strings.Split(ben.c.Self(t).Address, "/")[1], gid)
	eng := mlsgroup.New()
	var removal, after, before []byte
	for _, d := range dl {
		switch {
		case d.GetKind() == wire.MessageKind_MESSAGE_KIND_COMMIT && removal == nil:
			removal = d.GetPayload()
		case d.GetKind() == wire.MessageKind_MESSAGE_KIND_APPLICATION && removal != nil && after == nil:
			after = d.GetPayload()
		case d.GetKind() == wire.MessageKind_MESSAGE_KIND_APPLICATION && removal == nil:
			before = d.GetPayload()
		}
	}
	if removal == nil || after == nil || before == nil {
		t.Fatalf("mailbox lacks the expected entries (%d)", len(dl))
	}
	g, err := eng.Load(catOld, nil, cat.c.Self(t), acceptAll{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Process(removal); err != nil {
		t.Logf("removal commit with cat's old state: %v", err)
	}
	if r, err := g.Process(after); err == nil {
		t.Fatalf("removed member decrypted a later message: %q", r.Plaintext)
	}
	dg, err := eng.Load(dan.c.GroupState(t, gid), nil, dan.c.Self(t), acceptAll{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := dg.Process(before); err == nil {
		t.Fatalf("new member decrypted an earlier message: %q", r.Plaintext)
	}
}

type acceptAll struct{}

func (acceptAll) ValidateMember(identity, signatureKey []byte) error { return nil }
func (acceptAll) PrefetchMembers([][]byte)                           {}

// TestGroupConcurrentAdmins: two admins commit at the same time, 50 times;
// one commit wins each epoch, the other is redone on the next epoch without
// any error reaching the user, and all members agree on the final state.
func TestGroupConcurrentAdmins(t *testing.T) {
	if testing.Short() {
		t.Skip("over 2 s: not in the -short loop")
	}
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "ada", "bob", "cy", "pam", "quin")
	ada, bob, cy, pam, quin := us[0], us[1], us[2], us[3], us[4]
	// ada's and bob's clients count the commits they had to redo.
	var retries atomic.Int64
	for _, d := range []*dev{ada, bob} {
		d.c.SetLoggerForTest(slog.New(countHandler{n: &retries, msg: "group commit lost the epoch; catching up and retrying"}))
	}
	gid, err := ada.c.Groups().Create(ctx30(t), "race", []string{bob.user, cy.user})
	if err != nil {
		t.Fatal(err)
	}
	bob.drain()
	if err := ada.c.Groups().Promote(ctx30(t), gid, bob.user); err != nil {
		t.Fatal(err)
	}
	bob.drain()
	if gi := bob.info(gid); !gi.Admin {
		t.Fatalf("bob is not admin after promotion: %+v", gi)
	}
	toggle := func(d *dev, u string, in bool) error {
		if in {
			return d.c.Groups().RemoveMembers(ctx30(t), gid, []string{u})
		}
		return d.c.Groups().AddMembers(ctx30(t), gid, []string{u})
	}
	pin, qin := false, false
	for round := range 50 {
		var wg sync.WaitGroup
		var ea, eb error
		wg.Add(2)
		go func() { defer wg.Done(); ea = toggle(ada, pam.user, pin) }()
		go func() { defer wg.Done(); eb = toggle(bob, quin.user, qin) }()
		wg.Wait()
		if ea != nil || eb != nil {
			t.Fatalf("round %d: ada: %v, bob: %v", round, ea, eb)
		}
		pin, qin = !pin, !qin
	}
	t.Logf("50 rounds: %d commits redone after losing the epoch", retries.Load())
	if retries.Load() == 0 {
		t.Fatal("no commit ever lost the epoch: the admins did not race")
	}
	if err := ada.c.Groups().Rename(ctx30(t), gid, "raced"); err != nil {
		t.Fatal(err)
	}
	ref := ada.info(gid)
	if ref.Epoch < 100 || ref.Name != "raced" {
		t.Fatalf("final state %+v", ref)
	}
	for _, d := range []*dev{bob, cy} {
		d.drain()
		gi := d.info(gid)
		if gi.Epoch != ref.Epoch || gi.EpochAuthenticator != ref.EpochAuthenticator || !slices.Equal(gi.Devices, ref.Devices) ||
			gi.Name != ref.Name || !slices.Equal(gi.Admins, ref.Admins) {
			t.Fatalf("%s sees %+v; ada %+v", d.user, gi, ref)
		}
	}
}

// TestGroupNonAdminRefused: a non-admin's remove is refused by its own
// client, by the hub (CODE_FORBIDDEN) when sent anyway, and by every other
// member's client when a misbehaving hub delivers it.
func TestGroupNonAdminRefused(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "amy", "bea", "col")
	amy, bea, col := us[0], us[1], us[2]
	gid, err := amy.c.Groups().Create(ctx30(t), "roles", []string{bea.user, col.user})
	if err != nil {
		t.Fatal(err)
	}
	bea.drain()
	col.drain()
	if err := bea.c.Groups().RemoveMembers(ctx30(t), gid, []string{col.user}); !wire.Is(err, wire.Code_CODE_FORBIDDEN) {
		t.Fatalf("non-admin remove: %v, want CODE_FORBIDDEN", err)
	}
	if err := bea.c.Groups().Rename(ctx30(t), gid, "mine"); !wire.Is(err, wire.Code_CODE_FORBIDDEN) {
		t.Fatalf("non-admin rename: %v, want CODE_FORBIDDEN", err)
	}
	req, err := bea.c.RogueCommit(t, gid, []string{col.user})
	if err != nil {
		t.Fatal(err)
	}
	if err := bea.c.SendRequest(ctx30(t), req); !wire.Is(err, wire.Code_CODE_FORBIDDEN) {
		t.Fatalf("hub accepted a non-admin's remove: %v", err)
	}
	before := amy.info(gid)
	d := &wire.Delivery{ConversationId: gid, ConversationSeq: 99, Sender: bea.c.Self(t).Address, MessageId: req.MessageId,
		Kind: wire.MessageKind_MESSAGE_KIND_COMMIT, Epoch: req.Epoch, Payload: req.Payload, ServerTimeMs: time.Now().UnixMilli()}
	if err := amy.c.Deliver(ctx30(t), d); err != nil {
		t.Fatal(err)
	}
	after := amy.info(gid)
	if after.Epoch != before.Epoch || !slices.Equal(after.Devices, before.Devices) {
		t.Fatalf("amy applied a non-admin's remove: %+v -> %+v", before, after)
	}
	var refused bool
	amy.c.Receive(ctx30(t), 100*time.Millisecond, func(m store.Message) error {
		refused = refused || (m.Event == "commit_refused" && m.User == bea.user)
		return nil
	})
	if !refused {
		t.Fatal("the refused commit was not reported")
	}
	// The group still works for everyone.
	col.send(gid, "still here")
	if h := amy.drainTexts(); !slices.Contains(h, "still here") {
		t.Fatalf("amy got %q", h)
	}
}

func (d *dev) drainTexts() []string {
	var out []string
	for _, m := range d.drain() {
		if m.Event == "" {
			out = append(out, m.Text)
		}
	}
	return out
}

// countHandler counts log records with message msg.
type countHandler struct {
	n   *atomic.Int64
	msg string
}

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.n.Add(1)
	}
	return nil
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }

// TestDeliveryForNoValidConversation: a misbehaving server delivers
// messages under conversation ids no hub accepts (a control byte, no
// domain, empty). Each is skipped without an error that would fail the
// batch, nothing is recorded under the id (no conversation out of step to
// heal, nothing undecryptable to report), and the real group goes on.
func TestDeliveryForNoValidConversation(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "amy", "bea")
	amy, bea := us[0], us[1]
	gid, err := amy.c.Groups().Create(ctx30(t), "real", []string{bea.user})
	if err != nil {
		t.Fatal(err)
	}
	bea.drain()
	for _, conv := range []string{"bad\x00id@a.example", "bad\x01@a.example", "nodomain", ""} {
		for _, kind := range []wire.MessageKind{wire.MessageKind_MESSAGE_KIND_APPLICATION, wire.MessageKind_MESSAGE_KIND_COMMIT, wire.MessageKind_MESSAGE_KIND_WELCOME} {
			d := &wire.Delivery{ConversationId: conv, ConversationSeq: 1, Sender: amy.c.Self(t).Address, MessageId: "m-" + kind.String(),
				Kind: kind, Epoch: 1, Payload: []byte("not a message"), ServerTimeMs: time.Now().UnixMilli()}
			if err := bea.c.Deliver(ctx30(t), d); err != nil {
				t.Fatalf("%q %v: %v, want it skipped", conv, kind, err)
			}
			if o, ok := bea.c.OutOfStep(t, conv); ok {
				t.Fatalf("%q %v: marked out of step (%+v): a heal would rejoin a conversation that cannot exist", conv, kind, o)
			}
		}
	}
	amy.send(gid, "after the junk")
	if h := bea.drainTexts(); !slices.Contains(h, "after the junk") {
		t.Fatalf("bea's history after the junk: %q", h)
	}
}
