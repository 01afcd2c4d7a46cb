package homeserver

import (
	"context"
	"testing"
	"time"

	"hearth/federation/fedwire"
	"hearth/homeserver/wire"
)

// typingFrame asks the server to tell conv's members that c is typing.
func typingFrame(conv string, typing bool) *wire.ClientFrame {
	return &wire.ClientFrame{Body: &wire.ClientFrame_Typing{Typing: &wire.Typing{ConversationId: conv, Typing: typing}}}
}

func isTyping(f *wire.ServerFrame) bool { return f.GetTyping() != nil }

// TestFederatedTyping: typing in a conversation hubbed on a.example
// reaches the members on b.example and c.example: from the hub, and from
// a follower through the hub to the other follower. The hub refuses a
// signal for a sender that is not on the roster and pushes nothing.
func TestFederatedTyping(t *testing.T) {
	a, _, _, alice, bob, carol, conv := groupOfThree(t)
	alice.must(typingFrame(conv, true))
	for _, cl := range []*client{bob, carol} {
		if ev := awaitPush(t, cl, "typing push", isTyping).GetTyping(); ev.GetUser() != "alice@a.example" || ev.GetConversationId() != conv || !ev.GetTyping() {
			t.Fatalf("%s got %v, want alice typing in %s", cl.user, ev, conv)
		}
	}
	bob.must(typingFrame(conv, false))
	for _, cl := range []*client{alice, carol} {
		if ev := awaitPush(t, cl, "typing push", isTyping).GetTyping(); ev.GetUser() != "bob@b.example" || ev.GetTyping() {
			t.Fatalf("%s got %v, want bob stopped typing", cl.user, ev)
		}
	}
	noPush(t, bob, 200*time.Millisecond, isTyping) // not back to its sender

	// A signal from c.example for a device that is not on the roster.
	res := a.s.fed.Signals.ApplySignals(context.Background(), &fedwire.Transaction{Origin: "c.example", Destination: "a.example",
		Envelopes: []*fedwire.Envelope{{Id: "typ-x", Kind: fedwire.EnvelopeKind_ENVELOPE_KIND_TYPING, ConversationId: conv,
			Sender: "dave@c.example/DAVE", Typing: true}}})
	if got := res.GetResults()[0].GetCode(); got != fedwire.Code_CODE_NOT_MEMBER {
		t.Fatalf("signal of a non-member answered %v", got)
	}
	// A follower's signal claiming another server's user.
	res = a.s.fed.Signals.ApplySignals(context.Background(), &fedwire.Transaction{Origin: "c.example", Destination: "a.example",
		Envelopes: []*fedwire.Envelope{{Id: "typ-y", Kind: fedwire.EnvelopeKind_ENVELOPE_KIND_TYPING, ConversationId: conv,
			Sender: bob.addr(), Typing: true}}})
	if got := res.GetResults()[0].GetCode(); got != fedwire.Code_CODE_FORBIDDEN {
		t.Fatalf("signal for another server's user answered %v", got)
	}
	noPush(t, alice, 300*time.Millisecond, isTyping)
}
