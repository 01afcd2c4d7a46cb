package client

import (
	"context"
	"errors"
	"strings"

	"hearth/client/convstate"
	"hearth/client/store"
	"hearth/homeserver/wire"
)

// Signals are the lossy, unstored pushes: a member typing in a
// conversation, a contact's presence. The server sends them only to
// sessions online at that moment and drops them for slow ones.

// Signal is one typing or presence push, or a receipt event.
type Signal struct {
	Event        string // "typing", "presence" or "receipt"
	Conversation string // typing, receipt: the conversation id
	User         string // who: user@domain
	Typing       bool   // typing: started (true) or stopped
	State        string // presence: "online", "away" or "offline"
	LastActiveMs int64  // presence: when the user was last active
	// Receipt: "delivered" or "read", and the messages it newly covers
	// (every message of other users up to it in the conversation).
	Kind       string
	MessageIDs []string
}

// receiptEvent hands a stored receipt event to the OnSignal function
// (receipt events reach Receive through the inbox, after the receipt was
// stored; without an OnSignal function they are dropped).
func (c *Client) receiptEvent(m store.Message) {
	c.mu.Lock()
	fn := c.onSignal
	c.mu.Unlock()
	if fn != nil {
		fn(Signal{Event: "receipt", Conversation: m.Conversation, User: m.User, Kind: m.Kind, MessageIDs: m.MessageIDs})
	}
}

// OnSignal sets the function that receives typing and presence pushes
// and receipt events (nil: they are dropped). It runs on the session's
// goroutine (receipts: Receive's) and must not block.
func (c *Client) OnSignal(f func(Signal)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onSignal = f
}

// signal hands a typing or presence push to the OnSignal function.
func (c *Client) signal(f *wire.ServerFrame) {
	c.mu.Lock()
	fn := c.onSignal
	c.mu.Unlock()
	if fn == nil {
		return
	}
	switch b := f.GetBody().(type) {
	case *wire.ServerFrame_Typing:
		fn(Signal{Event: "typing", Conversation: b.Typing.GetConversationId(), User: b.Typing.GetUser(), Typing: b.Typing.GetTyping()})
	case *wire.ServerFrame_Presence, *wire.ServerFrame_PresenceList:
		c.presenceSignals(fn, f) // presence.go
	}
}

func presenceName(s wire.PresenceState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "PRESENCE_STATE_"))
}

// ErrTypingOff is returned by Typing while this user has typing
// indicators off (`chat settings typing off`): nothing is sent.
var ErrTypingOff = errors.New("typing indicators are off (chat settings typing on)")

// Typing tells the members of a conversation (target: a user address or
// a conversation id this device knows) who are online that this user
// started (true) or stopped typing. It is rate-limited by the server.
func (c *Client) Typing(ctx context.Context, target string, typing bool) error {
	const op = "client.Typing"
	var conv string
	var ok, off bool
	if err := c.st.View(func(tx *store.Tx) error {
		conv, ok = convstate.For(tx, target)
		off = settingIn(tx, "typing") == "off"
		return nil
	}); err != nil {
		return err
	}
	if !ok {
		return wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no conversation with %s on this device", target)
	}
	if off {
		return ErrTypingOff
	}
	_, err := c.link.call(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_Typing{Typing: &wire.Typing{ConversationId: conv, Typing: typing}}})
	return err
}

// SetPresence sets this user's presence ("online", "away" or "offline")
// for the users it shares a conversation with. An active session (not
// Passive) going online sets "online" by itself, and the last one going
// away sets "offline"; set from a passive session while no active one is
// connected, "online" or "away" lasts the server's lease (docs/presence.md).
func (c *Client) SetPresence(ctx context.Context, state string) error {
	const op = "client.SetPresence"
	st, ok := wire.PresenceState_value["PRESENCE_STATE_"+strings.ToUpper(state)]
	if !ok || st == int32(wire.PresenceState_PRESENCE_STATE_UNSPECIFIED) {
		return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "presence must be online, away or offline, not %q", state)
	}
	_, err := c.link.call(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_SetPresence{SetPresence: &wire.SetPresence{State: wire.PresenceState(st)}}})
	return err
}
