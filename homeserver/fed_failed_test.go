package homeserver

import (
	"testing"
	"time"

	"hearth/federation"
	"hearth/federation/fedwire"
	"hearth/homeserver/wire"
)

// expectNotice waits for c's next delivery and checks it is the
// delivery-failed notice for its message msgID (conversation seq) naming
// server.
func expectNotice(t *testing.T, c *client, conv, msgID string, seq uint64, server string) {
	t.Helper()
	d := collect(t, c, 1, fedWait)[0]
	if d.Kind != wire.MessageKind_MESSAGE_KIND_DELIVERY_FAILED || d.ConversationId != conv || d.MessageId != msgID ||
		d.ConversationSeq != seq || d.FailedServer != server || d.Sender != c.addr() || len(d.Payload) != 0 {
		t.Fatalf("%s: want the delivery-failed notice of %s (seq %d, %s), got %v", c.addr(), msgID, seq, server, d)
	}
}

// TestFederationDeliveryFailed: a hub whose DELIVER to a server expires
// tells the device that sent the message, with a notice in its mailbox
// naming the message and the server: directly when the sender is local to
// the hub, through the sender's server when it is remote. Nothing is
// dropped silently, and nobody else gets a notice.
func TestFederationDeliveryFailed(t *testing.T) {
	a, b, c := newFedNode(t, "a.example"), newFedNode(t, "b.example"), newFedNode(t, "c.example")
	a.stop()
	a.cfg.Federation.Outbound.Expiry = 1500 * time.Millisecond
	a.start()
	pinAll(t, a, b, c)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("a:\n%s\nb:\n%s", a.logs.String(), b.logs.String())
		}
	})
	_, alice := a.addUser("alice")
	_, bob := b.addUser("bob")
	_, carol := c.addUser("carol")
	for _, cl := range []*client{alice, bob, carol} {
		cl.must(syncFrame(0))
	}
	const conv = "df@a.example"
	createFedConv(alice, conv)
	alice.must(addCommit(conv, "add", 0, bob.addr(), carol.addr()))
	collect(t, bob, 1, fedWait)
	collect(t, carol, 1, fedWait)

	drained(t, a)
	c.stop()
	// A follower's message that cannot reach c: its sender on b is told.
	if ok := sendRetry(t, bob, appMsg(conv, "bob-lost", 1, "x"), fedWait); ok.ConversationSeq != 2 {
		t.Fatalf("bob's send: %v", ok)
	}
	if d := collect(t, alice, 1, fedWait)[0]; d.MessageId != "bob-lost" {
		t.Fatalf("alice got %v", d)
	}
	expectNotice(t, bob, conv, "bob-lost", 2, "c.example")
	// The hub's own user's message: told by the hub directly.
	alice.must(appMsg(conv, "alice-lost", 1, "y"))
	if d := collect(t, bob, 1, fedWait)[0]; d.MessageId != "alice-lost" || d.Kind != wire.MessageKind_MESSAGE_KIND_APPLICATION {
		t.Fatalf("bob got %v", d)
	}
	expectNotice(t, alice, conv, "alice-lost", 3, "c.example")

	// Nothing else arrives: no second notice, none for the other members.
	// Once a has expired both DELIVERs to c and no server has anything
	// queued, nothing more can come.
	waitFor(t, fedWait, func() bool {
		st, err := a.s.FederationList(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range st.Peers {
			if p.Domain == "c.example" {
				return p.Expired == 2 && p.QueueDepth == 0
			}
		}
		return false
	})
	drained(t, a)
	drained(t, b)
	for _, cl := range []*client{alice, bob} {
		select {
		case f := <-cl.pushes:
			if d := f.GetDelivery(); d != nil {
				t.Fatalf("%s: unexpected delivery %v", cl.addr(), d)
			}
		default:
		}
	}
	st, err := a.s.FederationList(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range st.Peers {
		if p.Domain == "c.example" && (p.Expired != 2 || p.QueueDepth != 0) {
			t.Fatalf("a's queue to c: %+v", p)
		}
	}
}

// drained waits until n has nothing queued for any destination.
func drained(t *testing.T, n *fedNode) {
	t.Helper()
	waitFor(t, fedWait, func() bool {
		st, err := n.s.FederationList(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		busy := 0
		for _, p := range st.Peers {
			busy += p.QueueDepth
		}
		return busy == 0
	})
}

// TestFederationGapAfterExpiry: DELIVERs a hub gave up on (expired while
// the follower was down) leave a gap in what the follower holds; the next
// DELIVER names the one before the gap as its previous, so the follower
// applies it instead of waiting for ever for messages that will never
// come, and the conversation goes on both ways.
func TestFederationGapAfterExpiry(t *testing.T) {
	a, c := newFedNode(t, "a.example"), newFedNode(t, "c.example")
	a.stop()
	a.cfg.Federation.Outbound.Expiry = 1500 * time.Millisecond
	a.start()
	pinAll(t, a, c)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("a:\n%s\nc:\n%s", a.logs.String(), c.logs.String())
		}
	})
	_, alice := a.addUser("alice")
	_, carol := c.addUser("carol")
	alice.must(syncFrame(0))
	carol.must(syncFrame(0))
	const conv = "gap@a.example"
	createFedConv(alice, conv)
	alice.must(addCommit(conv, "add", 0, carol.addr()))
	last := collect(t, carol, 1, fedWait)[0].Seq
	alice.must(appMsg(conv, "before", 1, "x"))
	if d := collect(t, carol, 1, fedWait)[0]; d.MessageId != "before" {
		t.Fatalf("carol got %v", d)
	} else {
		last = d.Seq
	}
	drained(t, a)

	c.stop()
	alice.must(appMsg(conv, "lost-1", 1, "y"))
	expectNotice(t, alice, conv, "lost-1", 3, "c.example")
	alice.must(appMsg(conv, "lost-2", 1, "z"))
	expectNotice(t, alice, conv, "lost-2", 4, "c.example")
	drained(t, a)

	// The hub keeps messages a long time again, and c is back.
	a.stop()
	a.cfg.Federation.Outbound.Expiry = time.Hour
	a.start()
	alice = a.resume(alice, 0)
	c.start()
	pinAll(t, a, c)
	carol = c.resume(carol, last)
	alice.must(appMsg(conv, "after-gap", 1, "w"))
	if d := collect(t, carol, 1, fedWait)[0]; d.MessageId != "after-gap" || d.ConversationSeq != 5 {
		t.Fatalf("carol got %v, want after-gap (seq 5)", d)
	}
	alice.must(appMsg(conv, "after-gap-2", 1, "v"))
	if d := collect(t, carol, 1, fedWait)[0]; d.MessageId != "after-gap-2" || d.ConversationSeq != 6 {
		t.Fatalf("carol got %v, want after-gap-2 (seq 6)", d)
	}
	if ok := sendRetry(t, carol, appMsg(conv, "carol-reply", 1, "u"), fedWait); ok.ConversationSeq != 7 {
		t.Fatalf("carol's reply: %v", ok)
	}
	for {
		d := collect(t, alice, 1, fedWait)[0]
		if d.MessageId == "carol-reply" {
			break
		}
		if d.MessageId != "after-gap" && d.MessageId != "after-gap-2" && d.MessageId != "lost-1" && d.MessageId != "lost-2" && d.MessageId != "before" {
			t.Fatalf("alice got %v", d)
		}
	}
	drained(t, a)
}

// TestFederationDeliverRefusedForGood: a DELIVER its destination refuses
// for good (here: the answer is handed to the queue as the sender loop
// would) is never silent: the device that sent the message gets a
// delivery-failed notice naming the server, and the next DELIVER of the
// conversation names the one before the refused one as previous, so the
// destination does not wait for the refused one for ever.
func TestFederationDeliverRefusedForGood(t *testing.T) {
	a, c := newFedNode(t, "a.example"), newFedNode(t, "c.example")
	pinAll(t, a, c)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("a:\n%s\nc:\n%s", a.logs.String(), c.logs.String())
		}
	})
	_, alice := a.addUser("alice")
	_, carol := c.addUser("carol")
	alice.must(syncFrame(0))
	carol.must(syncFrame(0))
	const conv = "refused@a.example"
	createFedConv(alice, conv)
	alice.must(addCommit(conv, "add", 0, carol.addr()))
	collect(t, carol, 1, fedWait)
	alice.must(appMsg(conv, "before", 1, "x"))
	last := collect(t, carol, 1, fedWait)[0].Seq
	drained(t, a)

	// c is down, so the DELIVER of "refused" stays queued; then the answer
	// that would have come back is handed to the queue.
	c.stop()
	alice.must(appMsg(conv, "refused", 1, "y"))
	var q federation.Queued
	waitFor(t, fedWait, func() bool {
		qs, err := a.s.fed.Batch(t.Context(), "c.example", 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range qs {
			if x.Envelope.MessageId == "refused" && x.Envelope.Kind == fedwire.EnvelopeKind_ENVELOPE_KIND_DELIVER {
				q = x
				return true
			}
		}
		return false
	})
	res := []*fedwire.EnvelopeResult{{Id: q.Envelope.Id, Code: fedwire.Code_CODE_FORBIDDEN, Message: "refused for this test"}}
	if err := a.s.fed.Finish(t.Context(), "c.example", []federation.Queued{q}, res); err != nil {
		t.Fatal(err)
	}
	expectNotice(t, alice, conv, "refused", 3, "c.example")

	c.start()
	pinAll(t, a, c)
	carol = c.resume(carol, last)
	alice.must(appMsg(conv, "after", 1, "z"))
	if d := collect(t, carol, 1, fedWait)[0]; d.MessageId != "after" || d.ConversationSeq != 4 {
		t.Fatalf("carol got %v, want after (seq 4)", d)
	}
	drained(t, a)
}
