package hub

import (
	"context"
	"testing"
	"time"

	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/keys/mls"
	"hearth/storage"
)

// TestHubSendViewSameBatch: Sends and the commits that change the roster
// in one storage writer transaction, as the writer groups them under
// load, while the writer answers the Sends from its send views: a device
// removed by a commit is refused at once, a message older than a device
// added by the commit just before is refused as stale, and the Sends
// around them are accepted.
func TestHubSendViewSameBatch(t *testing.T) {
	w := newVWorld(t)
	w.create()
	a1, a2, b1 := w.dev("ann@a.example/A1"), w.dev("ann@a.example/A2"), w.dev("bob@a.example/B1")
	_, kpB, _ := w.keyPackage(b1.id())
	out0, err := a1.g.Commit(mls.CommitOptions{Add: []*mls.KeyPackage{kpB}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.send(a1.id(), commitSend(0, out0, nil, nil)); err != nil {
		t.Fatalf("bob's add: %v", err)
	}
	a1.g.ApplyPendingCommit()
	// ann's next two commits, made ahead: bob removed (epoch 1 -> 2),
	// A2 added (2 -> 3).
	leafB, ok := a1.g.LeafOf([]byte(b1.id()))
	if !ok {
		t.Fatal("bob has no leaf")
	}
	out1, err := a1.g.Commit(mls.CommitOptions{Remove: []mls.LeafIndex{leafB}})
	if err != nil {
		t.Fatal(err)
	}
	a1.g.ApplyPendingCommit()
	_, kpA2, _ := w.keyPackage(a2.id())
	out2, err := a1.g.Commit(mls.CommitOptions{Add: []*mls.KeyPackage{kpA2}})
	if err != nil {
		t.Fatal(err)
	}
	a1.g.ApplyPendingCommit()

	app := func(id string, epoch uint64) *wire.Send {
		return &wire.Send{ConversationId: w.conv, MessageId: id, Kind: wire.MessageKind_MESSAGE_KIND_APPLICATION, Epoch: epoch, Payload: []byte(id)}
	}
	commit := func(id string, epoch uint64, out *mls.CommitOutput) *wire.Send {
		m := commitSend(epoch, out, nil, nil)
		m.ConversationId, m.MessageId = w.conv, id
		return m
	}
	steps := []struct {
		from string
		m    *wire.Send
		want wire.Code // 0: accepted
	}{
		{b1.id(), app("b-1", 1), 0},
		{a1.id(), app("a-1", 1), 0},
		{a1.id(), app("a-1", 1), 0},                          // a retry while the first is in the transaction
		{a1.id(), app("a-0", 5), wire.Code_CODE_STALE_EPOCH}, // claimed, then refused
		{a1.id(), app("a-0", 1), 0},                          // the same id again: no duplicate of the refused one
		{a1.id(), commit("c-remove", 1, out1), 0},
		{b1.id(), app("b-2", 1), wire.Code_CODE_NOT_MEMBER},
		{a1.id(), app("a-2", 2), 0},
		{a1.id(), app("a-3", 1), 0}, // within the window, no add since
		{a1.id(), commit("c-add", 2, out2), 0},
		{a1.id(), app("a-4", 2), wire.Code_CODE_STALE_EPOCH},
		{a1.id(), app("a-5", 3), 0},
		{a1.id(), app("a-6", 3), 0},
		// Retries in the same transaction: an accepted message is
		// answered as a duplicate with the first's record, also for bob,
		// removed since; a refused one is refused again, its claim gone
		// with its rollback.
		{a1.id(), app("a-1", 1), 0},
		{b1.id(), app("b-1", 1), 0},
		{b1.id(), app("b-2", 1), wire.Code_CODE_NOT_MEMBER},
		{a1.id(), app("a-4", 2), wire.Code_CODE_STALE_EPOCH},
		{a1.id(), app("a-6", 3), 0},
	}
	dupOf := map[int]int{2: 1, 13: 1, 14: 0, 17: 12} // retry step -> the step it repeats
	ctx := context.Background()
	release := make(chan struct{})
	blocker := w.db.Submit(ctx, func(*storage.Tx) error { <-release; return nil })
	time.Sleep(20 * time.Millisecond)
	b0, _ := w.db.WriteStats()
	h0, _ := w.db.SendViewStats()
	waits := make([]func() error, len(steps))
	results := make([]*Result, len(steps))
	for i, s := range steps {
		if err := w.h.ValidateSend("test", s.m); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		da, err := identity.ParseDevice(s.from)
		if err != nil {
			t.Fatal(err)
		}
		dev := da.Device
		if da.Domain() != vDomain {
			dev = ""
		}
		waits[i] = w.db.Submit(ctx, func(tx *storage.Tx) (err error) {
			results[i], err = w.h.Accept("test", tx, &Input{Send: s.m, Sender: da, DeviceID: dev, NowMs: 1})
			return err
		})
	}
	close(release)
	if err := blocker(); err != nil {
		t.Fatal(err)
	}
	for i, s := range steps {
		err := waits[i]()
		if s.want == 0 && err != nil || s.want != 0 && !wire.Is(err, s.want) {
			t.Errorf("step %d (%s from %s): %v, want %v", i, s.m.MessageId, s.from, err, s.want)
		}
	}
	if b, _ := w.db.WriteStats(); b-b0 != 2 {
		t.Fatalf("%d transactions: the steps were not in one", b-b0-1)
	}
	for i, r := range results {
		first, retry := dupOf[i]
		switch {
		case r == nil:
		case retry && (!r.Dup || r.Rec == nil || results[first].Rec == nil || *r.Rec != *results[first].Rec):
			t.Errorf("step %d: retry of step %d answered dup %v with %+v, want %+v", i, first, r.Dup, r.Rec, results[first].Rec)
		case !retry && r.Dup:
			t.Errorf("step %d (%s) answered as a duplicate", i, steps[i].m.MessageId)
		}
	}
	if h, _ := w.db.SendViewStats(); h == h0 {
		t.Fatal("no Send was answered from the send views: the test did not exercise them")
	}
	s := w.snap()
	if s.epoch != 3 || len(s.members) != 2 {
		t.Fatalf("after the batch: epoch %d members %v", s.epoch, s.members)
	}
}
