package homeserver

import (
	"testing"
	"time"

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
