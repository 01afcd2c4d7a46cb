package homeserver

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

const conv = "team@" + testDomain

// twoUsers sets up alice and bob (first devices) in one conversation:
// alice creates it and commits bob's device in at epoch 0 -> 1.
func twoUsers(t *testing.T, h *harness) (alice, bob *client) {
	alice, _ = h.firstDevice("alice")
	bob, _ = h.firstDevice("bob")
	createConv(alice, conv)
	ok := alice.must(commit(conv, "c0", 0, []string{bob.addr()}, nil)).GetSendOk()
	if ok.Epoch != 1 || ok.ConversationSeq != 1 {
		t.Fatalf("commit: %v", ok)
	}
	return alice, bob
}

func TestDeliveryBothWays(t *testing.T) {
	h := newHarness(t, Config{})
	alice, bob := twoUsers(t, h)
	bob.must(syncFrame(0))
	w := bob.deliveries(1)[0]
	if w.Kind != wire.MessageKind_MESSAGE_KIND_WELCOME || string(w.Payload) != "welcome-c0" || w.Epoch != 1 || w.Seq != 1 {
		t.Fatalf("welcome: %v", w)
	}
	alice.must(syncFrame(0))
	for i := 0; i < 5; i++ {
		alice.must(appMsg(conv, fmt.Sprint("a", i), 1, fmt.Sprint("from alice ", i)))
		bob.must(appMsg(conv, fmt.Sprint("b", i), 1, fmt.Sprint("from bob ", i)))
	}
	got := bob.deliveries(5)
	for i, d := range got {
		if string(d.Payload) != fmt.Sprint("from alice ", i) || d.Sender != alice.addr() || d.Seq != uint64(i+2) {
			t.Fatalf("bob got %v", d)
		}
	}
	fromBob := alice.deliveries(5)
	// Both see the hub's order: conversation seqs strictly increase.
	for i, d := range fromBob {
		if string(d.Payload) != fmt.Sprint("from bob ", i) || d.ConversationSeq != got[i].ConversationSeq+1 {
			t.Fatalf("alice got %v (bob's %d had conv seq %d)", d, i, got[i].ConversationSeq)
		}
	}
	bob.noDelivery()
	alice.noDelivery()
	info := alice.must(&wire.ClientFrame{Body: &wire.ClientFrame_GetConversation{GetConversation: &wire.GetConversation{ConversationId: conv}}}).GetConversation()
	if info.LastSeq != 11 || info.Epoch != 1 || len(info.Members) != 2 || string(info.GroupInfo) != "group-info-epoch-1" {
		t.Fatalf("conversation %v", info)
	}
	// A stranger neither sees nor writes to it.
	eve, _ := h.firstDevice("eve")
	eve.fails(&wire.ClientFrame{Body: &wire.ClientFrame_GetConversation{GetConversation: &wire.GetConversation{ConversationId: conv}}}, wire.Code_CODE_NOT_FOUND)
	eve.fails(appMsg(conv, "e1", 1, "x"), wire.Code_CODE_NOT_MEMBER)
}

// TestOfflineExactlyOnce: entries wait in the mailbox; after acks and
// reconnects each is delivered until acknowledged and never after.
func TestOfflineExactlyOnce(t *testing.T) {
	h := newHarness(t, Config{})
	alice, bob := twoUsers(t, h)
	bob.conn.Close() // bob goes offline
	for i := 0; i < 10; i++ {
		alice.must(appMsg(conv, fmt.Sprint("m", i), 1, fmt.Sprint("msg ", i)))
	}
	b2 := h.connect()
	if hello := b2.hello(bob.access).GetHelloOk(); hello.GetMailboxHead() != 11 {
		t.Fatalf("hello: %v", hello)
	}
	if head := b2.must(syncFrame(0)).GetSyncOk().Head; head != 11 {
		t.Fatalf("head %d", head)
	}
	ds := b2.deliveries(11)
	for i, d := range ds {
		if d.Seq != uint64(i+1) {
			t.Fatalf("delivery %d has seq %d", i, d.Seq)
		}
	}
	b2.must(ackFrame(7))
	b2.conn.Close()

	// Reconnect claiming less than acknowledged: nothing acked comes again.
	b3 := h.connect()
	b3.hello(bob.access)
	b3.must(syncFrame(0))
	ds = b3.deliveries(4)
	if ds[0].Seq != 8 || ds[3].Seq != 11 {
		t.Fatalf("after ack 7 got %d..%d", ds[0].Seq, ds[3].Seq)
	}
	b3.noDelivery()
	// A client that processed more than it acked resumes after its own position.
	b3.must(syncFrame(10))
	if d := b3.deliveries(1)[0]; d.Seq != 11 {
		t.Fatalf("resume after 10 got %d", d.Seq)
	}
	b3.fails(syncFrame(12), wire.Code_CODE_BAD_REQUEST) // beyond the head
	b3.fails(ackFrame(12), wire.Code_CODE_BAD_REQUEST)
	// Live: new messages arrive without a new Sync.
	alice.must(appMsg(conv, "live", 1, "live"))
	if d := b3.deliveries(1)[0]; d.Seq != 12 || string(d.Payload) != "live" {
		t.Fatalf("live delivery %v", d)
	}
	// And survive a restart: the ack is durable.
	b3.must(ackFrame(12))
	h.restart()
	b4 := h.connect()
	b4.hello(bob.access)
	b4.must(syncFrame(0))
	b4.noDelivery()
}

func TestDedupAcrossRestart(t *testing.T) {
	h := newHarness(t, Config{})
	alice, bob := twoUsers(t, h)
	first := alice.must(appMsg(conv, "once", 1, "hello")).GetSendOk()
	again := alice.must(appMsg(conv, "once", 1, "hello")).GetSendOk()
	if !again.Duplicate || again.ConversationSeq != first.ConversationSeq || first.Duplicate {
		t.Fatalf("retry: first %v again %v", first, again)
	}
	// Concurrent retries (pipelined on one stream) still give one message.
	chs := []<-chan *wire.ServerFrame{alice.start(appMsg(conv, "twice", 1, "x")), alice.start(appMsg(conv, "twice", 1, "x"))}
	a, b := alice.await(chs[0]).GetSendOk(), alice.await(chs[1]).GetSendOk()
	if a.ConversationSeq != b.ConversationSeq || a.Duplicate == b.Duplicate {
		t.Fatalf("pipelined retry: %v / %v", a, b)
	}
	h.restart()
	alice2 := h.connect()
	alice2.hello(alice.access)
	after := alice2.must(appMsg(conv, "once", 1, "hello")).GetSendOk()
	if !after.Duplicate || after.ConversationSeq != first.ConversationSeq || after.ServerTimeMs != first.ServerTimeMs {
		t.Fatalf("retry after restart: %v, first %v", after, first)
	}
	bob2 := h.connect()
	bob2.hello(bob.access)
	bob2.must(syncFrame(1)) // after the welcome
	ds := bob2.deliveries(2)
	if string(ds[0].Payload) != "hello" || ds[1].MessageId != "twice" {
		t.Fatalf("deliveries %v", ds)
	}
	bob2.noDelivery()
}

func TestStaleEpochCommit(t *testing.T) {
	h := newHarness(t, Config{})
	alice, bob := twoUsers(t, h)
	carol, _ := h.firstDevice("carol")
	// Alice and bob race to commit at epoch 1; one wins.
	alice.must(commit(conv, "ca", 1, nil, nil))
	e := bob.fails(commit(conv, "cb", 1, []string{carol.addr()}, nil), wire.Code_CODE_STALE_EPOCH)
	if !e.Retryable {
		t.Fatal("stale epoch should be retryable")
	}
	// Application messages: the current epoch and up to 2 back are fine
	// while nobody was added since; a future one is not.
	alice.must(appMsg(conv, "ok2", 2, "x"))
	alice.must(appMsg(conv, "ok1", 1, "x"))
	alice.fails(appMsg(conv, "future", 3, "x"), wire.Code_CODE_STALE_EPOCH)
	// Bob redoes it on the new epoch: carol is added at epoch 3.
	ok := bob.must(commit(conv, "cb2", 2, []string{carol.addr()}, nil)).GetSendOk()
	if ok.Epoch != 3 {
		t.Fatalf("epoch after retry %d", ok.Epoch)
	}
	// Within the window, but older than carol's add: she could not read
	// it, so it is refused and sealed again in the current epoch.
	alice.fails(appMsg(conv, "before-carol", 2, "x"), wire.Code_CODE_STALE_EPOCH)
	alice.must(appMsg(conv, "ok3", 3, "x"))
	alice.fails(appMsg(conv, "old", 0, "x"), wire.Code_CODE_STALE_EPOCH)
	// Carol got the welcome, then what came after her join: all of it
	// readable by her.
	carol.must(syncFrame(0))
	ds := carol.deliveries(2)
	if ds[0].Kind != wire.MessageKind_MESSAGE_KIND_WELCOME || ds[1].MessageId != "ok3" {
		t.Fatalf("carol got %v", ds)
	}
	carol.noDelivery()
}

func TestRemovedDeviceGetsItsRemovalOnly(t *testing.T) {
	h := newHarness(t, Config{})
	alice, bob := twoUsers(t, h)
	bob.must(syncFrame(0))
	bob.deliveries(1) // welcome
	alice.must(commit(conv, "rm", 1, nil, []string{bob.addr()}))
	alice.must(appMsg(conv, "after", 2, "not for bob"))
	d := bob.deliveries(1)[0]
	if d.MessageId != "rm" || d.Kind != wire.MessageKind_MESSAGE_KIND_COMMIT {
		t.Fatalf("bob got %v", d)
	}
	bob.noDelivery()
	bob.fails(appMsg(conv, "b", 2, "x"), wire.Code_CODE_NOT_MEMBER)
}

// TestOrderUnderConcurrency: many senders at once; every device sees the
// same conversation order.
func TestOrderUnderConcurrency(t *testing.T) {
	h := newHarness(t, Config{})
	alice, bob := twoUsers(t, h)
	carol, _ := h.firstDevice("carol")
	alice.must(commit(conv, "addc", 1, []string{carol.addr()}, nil))
	for _, c := range []*client{alice, bob, carol} {
		c.must(syncFrame(0))
	}
	const n = 30
	done := make(chan struct{})
	for _, c := range []*client{alice, bob, carol} {
		go func() {
			var chs []<-chan *wire.ServerFrame
			for i := 0; i < n; i++ {
				chs = append(chs, c.start(appMsg(conv, fmt.Sprint(c.device, i), 2, "x")))
			}
			for _, ch := range chs {
				if r := c.await(ch); r.GetSendOk() == nil {
					t.Error(r)
				}
			}
			done <- struct{}{}
		}()
	}
	for range 3 {
		<-done
	}
	order := func(c *client, skip int) []string {
		var ids []string
		for _, d := range c.deliveries(skip + 2*n) {
			if d.Kind == wire.MessageKind_MESSAGE_KIND_APPLICATION {
				ids = append(ids, fmt.Sprint(d.ConversationSeq, d.MessageId))
			}
		}
		return ids
	}
	a, b, c := order(alice, 0), order(bob, 2), order(carol, 1)
	// Merge check: each device misses only its own messages; the
	// subsequence of common messages must be identical.
	common := func(x, y []string) []string {
		set := map[string]bool{}
		for _, v := range y {
			set[v] = true
		}
		var out []string
		for _, v := range x {
			if set[v] {
				out = append(out, v)
			}
		}
		return out
	}
	if fmt.Sprint(common(a, b)) != fmt.Sprint(common(b, a)) || fmt.Sprint(common(b, c)) != fmt.Sprint(common(c, b)) {
		t.Fatal("devices disagree on the conversation order")
	}
	if len(common(a, b)) != n { // carol's messages
		t.Fatalf("alice and bob share %d messages, want %d", len(common(a, b)), n)
	}
}

func TestHistoryAndRetention(t *testing.T) {
	h := newHarness(t, Config{})
	alice, bob := twoUsers(t, h)
	for i := 0; i < 5; i++ {
		alice.must(appMsg(conv, fmt.Sprint("h", i), 1, fmt.Sprint("h", i)))
	}
	ctx := context.Background()
	page, err := h.s.History(ctx, bob.access, conv, 0, 3)
	if err != nil || len(page) != 3 || page[0].Seq != 6 || page[2].Seq != 4 {
		t.Fatalf("history page 1: %v %v", page, err)
	}
	page, err = h.s.History(ctx, bob.access, conv, 4, 10)
	if err != nil || len(page) != 3 || page[0].Seq != 3 || page[2].Kind != wire.MessageKind_MESSAGE_KIND_WELCOME {
		t.Fatalf("history page 2: %v %v", page, err)
	}
	if _, err := h.s.History(ctx, "garbage", conv, 0, 3); wire.KindOf(err) != wire.Code_CODE_UNAUTHENTICATED {
		t.Fatalf("history with a bad token: %v", err)
	}
	// Retention: unacked entries stay whatever their age; acked ones go
	// once older than Retention.
	bob.must(ackFrame(4))
	refresh := func() {
		r := h.connect().call(&wire.ClientFrame{Body: &wire.ClientFrame_Refresh{Refresh: &wire.Refresh{RefreshToken: bob.refresh}}})
		if r.GetRefreshOk() == nil {
			t.Fatal(r)
		}
		bob.access, bob.refresh = r.GetRefreshOk().AccessToken, r.GetRefreshOk().RefreshToken
	}
	h.clock.Add(6 * 24 * time.Hour)
	if _, err := h.s.RunRetention(ctx); err != nil {
		t.Fatal(err)
	}
	refresh()
	if page, err := h.s.History(ctx, bob.access, conv, 0, 10); len(page) != 6 {
		t.Fatalf("retention before 7 days removed entries: %d left (%v)", len(page), err)
	}
	h.clock.Add(2 * 24 * time.Hour)
	refresh()
	if _, err := h.s.RunRetention(ctx); err != nil {
		t.Fatal(err)
	}
	page, err = h.s.History(ctx, bob.access, conv, 0, 10)
	if err != nil || len(page) != 2 || page[1].Seq != 5 {
		t.Fatalf("after retention: %v %v", page, err)
	}
}

// TestDeliveryWindow: a client that does not acknowledge gets at most
// DeliveryWindow entries; each ack opens the window by what it covers.
func TestDeliveryWindow(t *testing.T) {
	h := newHarness(t, Config{DeliveryWindow: 4})
	alice, bob := twoUsers(t, h)
	for i := 0; i < 10; i++ {
		alice.must(appMsg(conv, fmt.Sprint("w", i), 1, "x"))
	}
	bob.must(syncFrame(0))
	ds := bob.deliveries(4)
	if ds[3].Seq != 4 {
		t.Fatalf("window: last seq %d", ds[3].Seq)
	}
	bob.noDelivery() // the window is full
	bob.must(ackFrame(2))
	if ds = bob.deliveries(2); ds[0].Seq != 5 || ds[1].Seq != 6 {
		t.Fatalf("after ack 2: %d, %d", ds[0].Seq, ds[1].Seq)
	}
	bob.noDelivery()
	bob.must(ackFrame(6))
	if ds = bob.deliveries(4); ds[3].Seq != 10 {
		t.Fatalf("after ack 6: last %d", ds[3].Seq)
	}
	alice.must(appMsg(conv, "w10", 1, "x"))
	bob.noDelivery() // 7..10 unacknowledged: full again
	bob.must(ackFrame(10))
	if d := bob.deliveries(1)[0]; d.Seq != 11 {
		t.Fatalf("after ack 10: %d", d.Seq)
	}
}

// TestExternalJoin: a new device of a user already in the group joins by
// external commit (it reads GroupInfo, commits adding itself); a stranger
// cannot.
func TestExternalJoin(t *testing.T) {
	h := newHarness(t, Config{})
	alice, bob := twoUsers(t, h)
	// bob's second device, approved by his first.
	lk, _ := identity.GenerateLinkKey(rand.Reader)
	b2 := h.connect()
	ok := b2.login("bob", "password-bob", lk.Public().Bytes())
	bob.must(&wire.ClientFrame{Body: &wire.ClientFrame_ApproveDevice{ApproveDevice: &wire.ApproveDevice{
		DeviceId: ok.DeviceId, DeviceList: h.accounts["bob"].withDevice(t, ok.DeviceId), SealedBundle: []byte("s")}}})
	b2.must(&wire.ClientFrame{Body: &wire.ClientFrame_FetchApproval{FetchApproval: &wire.FetchApproval{}}})
	info := b2.must(&wire.ClientFrame{Body: &wire.ClientFrame_GetConversation{GetConversation: &wire.GetConversation{ConversationId: conv}}}).GetConversation()
	if string(info.GroupInfo) != "group-info-epoch-1" {
		t.Fatalf("group info for the joiner: %q", info.GroupInfo)
	}
	join := commit(conv, "join", 1, []string{b2.addr()}, nil)
	join.GetSend().Welcome = nil
	if ok := b2.must(join).GetSendOk(); ok.Epoch != 2 {
		t.Fatalf("external commit: %v", ok)
	}
	alice.must(syncFrame(0))
	if d := alice.deliveries(1)[0]; d.MessageId != "join" || d.Sender != b2.addr() {
		t.Fatalf("alice got %v", d)
	}
	b2.must(appMsg(conv, "hi", 2, "hello from the new device"))

	eve, _ := h.firstDevice("eve")
	sneak := commit(conv, "sneak", 2, []string{eve.addr()}, nil)
	sneak.GetSend().Welcome = nil
	eve.fails(sneak, wire.Code_CODE_NOT_MEMBER)
	eve.fails(&wire.ClientFrame{Body: &wire.ClientFrame_GetConversation{GetConversation: &wire.GetConversation{ConversationId: conv}}}, wire.Code_CODE_NOT_FOUND)
}
