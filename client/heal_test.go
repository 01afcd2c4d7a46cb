package client_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"hearth/client"
	"hearth/client/convstate"
	"hearth/client/store"
)

// logCounter is a slog handler counting records by message.
type logCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (l *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCounter) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n[r.Message]++
	return nil
}
func (l *logCounter) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCounter) WithGroup(string) slog.Handler      { return l }

func (l *logCounter) count(prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for m, c := range l.n {
		if strings.HasPrefix(m, prefix) {
			n += c
		}
	}
	return n
}

func countLogs(d *dev) *logCounter {
	l := &logCounter{n: map[string]int{}}
	d.c.SetLoggerForTest(slog.New(l))
	return l
}

// eventsNamed returns the events called name among ms.
func eventsNamed(ms []store.Message, name string) []store.Message {
	var out []store.Message
	for _, m := range ms {
		if m.Event == name {
			out = append(out, m)
		}
	}
	return out
}

func textsOf(ms []store.Message) []string {
	var out []string
	for _, m := range ms {
		if m.Event == "" {
			out = append(out, m.Text)
		}
	}
	return out
}

// staleBen makes a 1:1 of ann and ben in which ben's state is restored
// to one from before a commit (ann's second device added), as from a
// backup.
func staleBen(t *testing.T) (ts *client.TestServer, conv string, ann, ben, ann2 *dev) {
	ts = client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "ann", "ben")
	ann, ben = us[0], us[1]
	ann.send(ben.user, "one")
	got := ben.drain()
	if txt := textsOf(got); !slices.Equal(txt, []string{"one"}) {
		t.Fatalf("ben got %q", txt)
	}
	conv = got[0].Conversation
	old := ben.c.GroupState(t, conv)
	ann2 = newDev(t, ts, ann.user)
	ann2.link(groupPW, ann) // ann's device adds it: a commit
	ann.send(conv, "two")
	if got := textsOf(ben.drain()); !slices.Equal(got, []string{"two"}) {
		t.Fatalf("ben got %q", got)
	}
	ann2.drain()
	ben.c.RestoreGroupState(t, conv, old)
	return ts, conv, ann, ben, ann2
}

// staleGroupBen is staleBen in a group of ann, ben and cat, with dan added
// after ben's state was taken.
func staleGroupBen(t *testing.T) (gid string, ann, ben *dev) {
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "ann", "ben", "cat", "dan")
	ann, ben = us[0], us[1]
	gid, err := ann.c.Groups().Create(ctx30(t), "heal", []string{ben.user, us[2].user})
	if err != nil {
		t.Fatal(err)
	}
	ben.drain()
	old := ben.c.GroupState(t, gid)
	if err := ann.c.Groups().AddMembers(ctx30(t), gid, []string{us[3].user}); err != nil {
		t.Fatal(err)
	}
	ann.send(gid, "two")
	if got := textsOf(ben.drain()); !slices.Equal(got, []string{"two"}) {
		t.Fatalf("ben got %q", got)
	}
	ben.c.RestoreGroupState(t, gid, old)
	return gid, ann, ben
}

// TestHealOutOfStepRejoinsOnce: a delivery of an epoch ben's state does
// not have marks the conversation out of step (durably, with the cause);
// Receive then rejoins it once by external commit, reports the messages
// it could not decrypt with a count, and the conversation works again
// both ways.
func TestHealOutOfStepRejoinsOnce(t *testing.T) {
	ts, gid, ann, ben, ann2 := staleBen(t)
	ann.send(gid, "three")

	// The receiver alone (no heal) marks it.
	ds := ts.MailboxPayloads(t, ben.c.Self(t).Address[strings.LastIndex(ben.c.Self(t).Address, "/")+1:], gid)
	if err := ben.c.Deliver(ctx30(t), ds[len(ds)-1]); err != nil {
		t.Fatal(err)
	}
	if o, ok := ben.c.OutOfStep(t, gid); !ok || !strings.Contains(o.Cause, "epoch") || o.Tries != 0 {
		t.Fatalf("after a message of a later epoch: out of step %v %+v", ok, o)
	}

	logs := countLogs(ben)
	ann.send(gid, "four")
	got := ben.drain()
	if txt := textsOf(got); len(txt) != 0 {
		t.Fatalf("ben decrypted %q with a stale state", txt)
	}
	// "three" was counted twice (handed in above, then delivered).
	und := eventsNamed(got, "undecryptable")
	if len(und) != 1 || und[0].Count != 3 || und[0].Conversation != gid || und[0].Reason == "" {
		t.Fatalf("undecryptable events %+v, want one with count 3", und)
	}
	if _, ok := ben.c.OutOfStep(t, gid); ok {
		t.Fatal("still out of step after Receive")
	}
	if n := logs.count("rejoined a conversation"); n != 1 {
		t.Fatalf("%d rejoins, want 1", n)
	}
	if got := ben.drain(); len(got) != 0 {
		t.Fatalf("a second Receive got %+v", got)
	}
	if n := logs.count("rejoined a conversation"); n != 1 {
		t.Fatalf("%d rejoins after a second Receive, want 1", n)
	}

	ben.send(gid, "ben is back")
	for _, d := range []*dev{ann, ann2} {
		if got := textsOf(d.drain()); len(got) == 0 || got[len(got)-1] != "ben is back" {
			t.Fatalf("%s got %q", d.user, got)
		}
	}
	ann.send(gid, "five")
	if got := textsOf(ben.drain()); !slices.Equal(got, []string{"five"}) {
		t.Fatalf("ben got %q", got)
	}
}

// TestHealQueuedItemsSurvive: messages ben queued while out of step are
// sealed under the new epoch after the heal and arrive, in order.
func TestHealQueuedItemsSurvive(t *testing.T) {
	_, gid, ann, ben, ann2 := staleBen(t)
	ann.send(gid, "three")
	var ids []string
	for _, text := range []string{"q1", "q2", "q3"} {
		id, err := ben.c.Queue(gid, text)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	logs := countLogs(ben)
	if err := ben.c.Flush(ctx30(t), ids[len(ids)-1]); err != nil {
		t.Fatalf("flush after falling out of step: %v", err)
	}
	if n := logs.count("rejoined a conversation"); n != 1 {
		t.Fatalf("%d rejoins, want 1", n)
	}
	for _, d := range []*dev{ann, ann2} {
		ms := d.drain()
		if got := textsOf(ms); !slices.Equal(got, []string{"q1", "q2", "q3"}) && !slices.Equal(got, []string{"three", "q1", "q2", "q3"}) {
			t.Fatalf("%s got %q (%+v)", d.user, got, ms)
		}
	}
	var left []store.OutboxItem
	ben.c.Store().View(func(tx *store.Tx) (err error) { left, err = tx.Outbox(); return })
	if len(left) != 0 {
		t.Fatalf("ben's outbox holds %d items", len(left))
	}
}

// TestHealRefusedMarksGone: ben is removed while its state is stale, so it
// cannot process the removal; healing finds its user is no longer on the
// roster, marks the conversation gone and tells the user, and a send to it
// fails at once.
func TestHealRefusedMarksGone(t *testing.T) {
	gid, ann, ben := staleGroupBen(t)
	if err := ann.c.Groups().RemoveMembers(ctx30(t), gid, []string{ben.user}); err != nil {
		t.Fatal(err)
	}
	got := ben.drain()
	if ev := eventsNamed(got, "removed"); len(ev) != 1 || ev[0].Conversation != gid || !strings.Contains(ev[0].Text, "no longer a member") {
		t.Fatalf("ben's events %+v, want one removed", got)
	}
	if !ben.c.Gone(t, gid) {
		t.Fatal("conversation not marked gone")
	}
	if _, ok := ben.c.OutOfStep(t, gid); ok {
		t.Fatal("a gone conversation is still out of step")
	}
	if _, err := ben.c.Queue(gid, "hello?"); err == nil || !strings.Contains(err.Error(), "not a member") {
		t.Fatalf("queue to a gone conversation: %v", err)
	}
	if got := ben.drain(); len(got) != 0 {
		t.Fatalf("a second Receive got %+v", got)
	}
}

// TestHealBoundedTries: a rejoin the hub refuses for a reason that does
// not pass (the group is full) is counted; after convstate.MaxHealTries
// the device stops trying, tells the user once, and a send fails at once
// with the reason instead of spinning.
func TestHealBoundedTries(t *testing.T) {
	ts := client.NewTestServerMaxMembers(t, "a.example", 2)
	us := groupUsers(t, ts, "ann", "ben")
	ann, ben := us[0], us[1]
	gid, err := ann.c.Groups().Create(ctx30(t), "full", []string{ben.user})
	if err != nil {
		t.Fatal(err)
	}
	ben.drain()
	ben2 := newDev(t, ts, ben.user)
	ben2.link(groupPW, ben) // ben cannot add it: the group is full
	ben2.drain()

	// ben2 sends to the group it is not in yet: it tries to join.
	id, err := ben2.c.Queue(gid, "from ben2")
	if err != nil {
		t.Fatal(err)
	}
	if err := ben2.c.Flush(ctx30(t), id); err == nil {
		t.Fatal("a send needing a refused join succeeded")
	}
	o, ok := ben2.c.OutOfStep(t, gid)
	if !ok || o.Tries != 1 || !strings.Contains(o.LastError, "limit") {
		t.Fatalf("after a refused join: %v %+v", ok, o)
	}
	var failed []store.Message
	for range convstate.MaxHealTries + 2 {
		failed = append(failed, eventsNamed(ben2.drain(), "rejoin_failed")...)
	}
	if o, _ := ben2.c.OutOfStep(t, gid); o.Tries != convstate.MaxHealTries {
		t.Fatalf("tries = %d, want %d", o.Tries, convstate.MaxHealTries)
	}
	if len(failed) != 1 || failed[0].Conversation != gid {
		t.Fatalf("rejoin_failed events %+v, want one", failed)
	}
	id, err = ben2.c.Queue(gid, "again")
	if err != nil {
		t.Fatal(err)
	}
	err = ben2.c.Flush(ctx30(t), id)
	if err == nil || !strings.Contains(err.Error(), "failed 5 times") {
		t.Fatalf("send after giving up: %v", err)
	}
	// ann and ben are not disturbed.
	ann.send(gid, "still fine")
	if got := textsOf(ben.drain()); !slices.Equal(got, []string{"still fine"}) {
		t.Fatalf("ben got %q", got)
	}
}

// TestHealWaitsForRevokedMember: ben's state is stale, and the hub's tree
// still holds cat2, which cat's list no longer names (no member has run a
// roster check since). A rejoin checks every leaf strictly, so ben cannot
// rejoin yet; that is not counted towards giving up, however often ben
// tries. Once a member's send removes cat2, ben rejoins and talks again.
func TestHealWaitsForRevokedMember(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "ann", "ben", "cat", "dan")
	ann, ben, cat, dan := us[0], us[1], us[2], us[3]
	cat2 := newDev(t, ts, cat.user)
	cat2.link(groupPW, cat)
	gid, err := ann.c.Groups().Create(ctx30(t), "revoked member", []string{ben.user, cat.user})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []*dev{ben, cat, cat2} {
		d.drain()
	}
	old := ben.c.GroupState(t, gid)
	if err := ann.c.Groups().AddMembers(ctx30(t), gid, []string{dan.user}); err != nil {
		t.Fatal(err)
	}
	ben.drain()
	ben.c.RestoreGroupState(t, gid, old)
	cat.c.PublishListWithout(t, deviceID(cat2))
	ben.c.FetchList(t, cat.user) // ben knows cat's new list
	ann.send(gid, "ben cannot read this yet")

	for i := 0; i < 7; i++ {
		if i > 0 {
			ben.c.MarkOutOfStep(t, gid, "test: try again")
		}
		ben.drain()
	}
	o, out := ben.c.OutOfStep(t, gid)
	if !out || o.Tries != 0 {
		t.Fatalf("after 7 heals blocked by a revoked member: out of step %v, %+v (want not counted)", out, o)
	}
	cat.send(gid, "from cat") // cat's roster check removes cat2
	got := ben.drain()
	if _, out := ben.c.OutOfStep(t, gid); out {
		t.Fatal("still out of step once cat2 was removed")
	}
	if len(eventsNamed(got, "rejoin_failed")) > 0 {
		t.Fatalf("ben gave up: %+v", got)
	}
	ben.send(gid, "ben is back")
	for _, d := range []*dev{ann, cat, dan} {
		if txt := textsOf(d.drain()); !slices.Contains(txt, "ben is back") {
			t.Fatalf("%s got %q", d.user, txt)
		}
	}
}
