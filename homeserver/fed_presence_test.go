package homeserver

import (
	"context"
	"testing"
	"time"

	"hearth/federation/fedwire"
	"hearth/homeserver/wire"
)

func presenceFrame(st wire.PresenceState) *wire.ClientFrame {
	return &wire.ClientFrame{Body: &wire.ClientFrame_SetPresence{SetPresence: &wire.SetPresence{State: st}}}
}

// awaitPresence waits for c to be told user's state, skipping other pushes.
func awaitPresence(t *testing.T, c *client, user string, st wire.PresenceState) {
	t.Helper()
	deadline := time.After(fedWait)
	for {
		select {
		case f := <-c.pushes:
			if ev := f.GetPresence(); ev != nil && ev.GetUser() == user && ev.GetState() == st {
				return
			}
		case <-deadline:
			t.Fatalf("%s was not told %s is %v", c.user, user, st)
		}
	}
}

// noPresence checks c is not told anything of user within a short while.
func noPresence(t *testing.T, c *client, user string, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case f := <-c.pushes:
			if ev := f.GetPresence(); ev != nil && ev.GetUser() == user {
				t.Fatalf("%s was told %v", c.user, ev)
			}
		case <-deadline:
			return
		}
	}
}

// TestFederatedPresence: in a conversation hubbed on a.example with
// members on b.example and c.example, a follower's user's presence
// reaches the hub's user and, relayed by the hub, the other follower's;
// the hub's user's presence reaches both followers; a relay by a server
// that is not the hub of a shared conversation pushes nothing.
func TestFederatedPresence(t *testing.T) {
	a, b, c := newFedNode(t, "a.example"), newFedNode(t, "b.example"), newFedNode(t, "c.example")
	pinAll(t, a, b, c)
	_, alice := a.addUser("alice")
	_, bob := b.addUser("bob")
	_, carol := c.addUser("carol")
	for _, cl := range []*client{alice, bob, carol} {
		cl.must(syncFrame(0))
	}
	const conv = "group@a.example"
	createFedConv(alice, conv)
	alice.must(addCommit(conv, "add", 0, bob.addr(), carol.addr()))
	collect(t, bob, 1, fedWait)
	collect(t, carol, 1, fedWait)

	away := wire.PresenceState_PRESENCE_STATE_AWAY
	bob.must(presenceFrame(away))
	awaitPresence(t, alice, "bob@b.example", away)
	awaitPresence(t, carol, "bob@b.example", away)
	alice.must(presenceFrame(away))
	awaitPresence(t, bob, "alice@a.example", away)
	awaitPresence(t, carol, "alice@a.example", away)
	if st, _ := a.s.presence.Get("bob@b.example"); st != away {
		t.Fatalf("the hub remembers bob as %v", st)
	}

	// b.example hubs no conversation of carol's: its relay is ignored.
	res := c.s.fed.applySignals(context.Background(), &fedwire.Transaction{Origin: "b.example", Destination: "c.example",
		Envelopes: []*fedwire.Envelope{{Id: "prs-x", Kind: fedwire.EnvelopeKind_ENVELOPE_KIND_PRESENCE,
			Sender: "mallory@a.example", Presence: uint32(wire.PresenceState_PRESENCE_STATE_ONLINE), Recipients: []string{"carol@c.example"}}}})
	if got := res.GetResults()[0].GetCode(); got != fedwire.Code_CODE_OK {
		t.Fatalf("relay answered %v", got)
	}
	noPresence(t, carol, "mallory@a.example", 300*time.Millisecond)
}
