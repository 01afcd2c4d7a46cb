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

// presenceOf matches a push telling user's state (any state: st 0), on
// its own or in the list of contacts' presence a session gets when it
// connects.
func presenceOf(user string, st wire.PresenceState) func(*wire.ServerFrame) bool {
	match := func(ev *wire.PresenceEvent) bool {
		return ev != nil && ev.GetUser() == user && (st == 0 || ev.GetState() == st)
	}
	return func(f *wire.ServerFrame) bool {
		if match(f.GetPresence()) {
			return true
		}
		for _, ev := range f.GetPresenceList().GetPresence() {
			if match(ev) {
				return true
			}
		}
		return false
	}
}

func awaitPresence(t *testing.T, c *client, user string, st wire.PresenceState) {
	t.Helper()
	awaitPush(t, c, user+" "+st.String(), presenceOf(user, st))
}

// TestFederatedPresence: in a conversation hubbed on a.example with
// members on b.example and c.example, a follower's user's presence
// reaches the hub's user and, relayed by the hub, the other follower's;
// the hub's user's presence reaches both followers; a relay by a server
// that is not the hub of a shared conversation pushes nothing.
func TestFederatedPresence(t *testing.T) {
	a, _, c, alice, bob, carol, _ := groupOfThree(t)
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
	// A new session of carol's device is told bob's last known state.
	carol2 := c.resume(carol, 0)
	awaitPresence(t, carol2, "bob@b.example", away)

	// b.example hubs no conversation of carol's: its relay is ignored.
	res := c.s.fed.Signals.ApplySignals(context.Background(), &fedwire.Transaction{Origin: "b.example", Destination: "c.example",
		Envelopes: []*fedwire.Envelope{{Id: "prs-x", Kind: fedwire.EnvelopeKind_ENVELOPE_KIND_PRESENCE,
			Sender: "mallory@a.example", Presence: uint32(wire.PresenceState_PRESENCE_STATE_ONLINE), LastActiveMs: 12345, Recipients: []string{"carol@c.example"}}}})
	if got := res.GetResults()[0].GetCode(); got != fedwire.Code_CODE_FORBIDDEN {
		t.Fatalf("relay answered %v", got)
	}
	noPush(t, carol, 300*time.Millisecond, presenceOf("mallory@a.example", 0))
	// ... and is not remembered as mallory's presence either (a session
	// connecting later would have been told it).
	if st, at := c.s.presence.Get("mallory@a.example"); at == 12345 {
		t.Fatalf("a relay from a server hubbing nothing of carol's set mallory's presence to %v", st)
	}
	// A third-domain user's presence is taken from its own server
	// (first hop) or a hub of a conversation of the recipient, never
	// from another follower: b.example telling c about alice, whom b
	// does not host, for carol, is refused.
	res = c.s.fed.Signals.ApplySignals(context.Background(), &fedwire.Transaction{Origin: "b.example", Destination: "c.example",
		Envelopes: []*fedwire.Envelope{{Id: "prs-y", Kind: fedwire.EnvelopeKind_ENVELOPE_KIND_PRESENCE,
			Sender: "alice@a.example", Presence: uint32(wire.PresenceState_PRESENCE_STATE_OFFLINE), Recipients: []string{"carol@c.example"}}}})
	if got := res.GetResults()[0].GetCode(); got != fedwire.Code_CODE_FORBIDDEN {
		t.Fatalf("relay of alice by b answered %v", got)
	}
	if st, _ := c.s.presence.Get("alice@a.example"); st != away {
		t.Fatalf("alice's presence at c is %v after b's relay, want still %v", st, away)
	}
}
