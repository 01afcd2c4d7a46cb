package federation

import (
	"fmt"

	"hearth/federation/fedwire"
	"hearth/keys/identity"
)

// ValidDomain checks a server domain.
func ValidDomain(d string) error {
	if err := identity.CheckDomain(d); err != nil {
		return fmt.Errorf("domain %q: %w", d, err)
	}
	return nil
}

// HubOf returns the hub domain of a conversation id "LOCAL@hubdomain".
func HubOf(conversationID string) (string, error) {
	c, err := identity.ParseConversation(conversationID)
	return c.Hub(), err
}

// CheckEnvelope refuses envelopes an origin may not send: a server speaks
// only for its own users and for the conversations it hubs. What it checks
// is what a forged envelope would get wrong.
func CheckEnvelope(origin, self string, env *fedwire.Envelope) error {
	const op = "federation.CheckEnvelope"
	bad := func(format string, args ...any) error {
		return errorf(op, fedwire.Code_CODE_BAD_REQUEST, format, args...)
	}
	forbidden := func(format string, args ...any) error {
		return errorf(op, fedwire.Code_CODE_FORBIDDEN, format, args...)
	}
	if env.GetId() == "" || len(env.GetId()) > 128 {
		return bad("envelope id missing or over 128 bytes")
	}
	switch env.GetKind() {
	case fedwire.EnvelopeKind_ENVELOPE_KIND_SUBMIT:
		dev, err := identity.ParseDevice(env.GetSender())
		if err != nil {
			return bad("sender: %v", err)
		}
		if dev.User.Domain != origin {
			return forbidden("%s may not submit for %s", origin, dev)
		}
		hub, err := HubOf(env.GetConversationId())
		if err != nil {
			return bad("%v", err)
		}
		if hub != self {
			return errorf(op, fedwire.Code_CODE_WRONG_DESTINATION, "conversation %s is hubbed at %s, not here", env.GetConversationId(), hub)
		}
	case fedwire.EnvelopeKind_ENVELOPE_KIND_DELIVER, fedwire.EnvelopeKind_ENVELOPE_KIND_SUBMIT_RESULT:
		hub, err := HubOf(env.GetConversationId())
		if err != nil {
			return bad("%v", err)
		}
		if hub != origin {
			return forbidden("%s is not the hub of %s", origin, env.GetConversationId())
		}
		if env.GetKind() == fedwire.EnvelopeKind_ENVELOPE_KIND_DELIVER {
			// The hub speaks for the members of its conversation; whether a
			// sender of this server's own really sent it is checked against
			// what this server submitted (homeserver/fedlink).
			if _, err := identity.ParseDevice(env.GetSender()); err != nil {
				return bad("sender: %v", err)
			}
		}
		for _, r := range env.GetRecipients() {
			dev, err := identity.ParseDevice(r)
			if err != nil {
				return bad("recipient: %v", err)
			}
			if dev.User.Domain != self {
				return bad("recipient %s is not on %s", dev, self)
			}
		}
	case fedwire.EnvelopeKind_ENVELOPE_KIND_TYPING:
		return checkTyping(origin, self, env)
	case fedwire.EnvelopeKind_ENVELOPE_KIND_PRESENCE:
		return checkPresence(origin, self, env)
	case fedwire.EnvelopeKind_ENVELOPE_KIND_DEVICE_LIST:
		u, err := identity.ParseUser(env.GetSender())
		if err != nil {
			return bad("user: %v", err)
		}
		if u.Domain != origin {
			return forbidden("%s may not publish devices of %s", origin, u)
		}
	default:
		return bad("unknown envelope kind %d", env.GetKind())
	}
	return nil
}

// checkTyping: a typing signal goes from a follower to the hub (sender a
// device of the origin) or from the hub to a follower (recipients devices
// of the destination).
func checkTyping(origin, self string, env *fedwire.Envelope) error {
	const op = "federation.CheckEnvelope"
	dev, err := identity.ParseDevice(env.GetSender())
	if err != nil {
		return errorf(op, fedwire.Code_CODE_BAD_REQUEST, "sender: %v", err)
	}
	hub, err := HubOf(env.GetConversationId())
	if err != nil {
		return errorf(op, fedwire.Code_CODE_BAD_REQUEST, "%v", err)
	}
	switch {
	case hub == self:
		if dev.User.Domain != origin {
			return errorf(op, fedwire.Code_CODE_FORBIDDEN, "%s may not signal for %s", origin, dev)
		}
	case hub == origin:
		if len(env.GetRecipients()) == 0 {
			return errorf(op, fedwire.Code_CODE_BAD_REQUEST, "typing from the hub names no recipients")
		}
		for _, r := range env.GetRecipients() {
			rd, err := identity.ParseDevice(r)
			if err != nil {
				return errorf(op, fedwire.Code_CODE_BAD_REQUEST, "recipient: %v", err)
			}
			if rd.User.Domain != self {
				return errorf(op, fedwire.Code_CODE_BAD_REQUEST, "recipient %s is not on %s", rd, self)
			}
		}
	default:
		return errorf(op, fedwire.Code_CODE_FORBIDDEN, "%s is neither the hub of %s nor sends to it", origin, env.GetConversationId())
	}
	return nil
}

// checkPresence: a user's presence comes from the user's server, or is
// relayed by a hub to named recipients (users of the destination).
func checkPresence(origin, self string, env *fedwire.Envelope) error {
	const op = "federation.CheckEnvelope"
	u, err := identity.ParseUser(env.GetSender())
	if err != nil {
		return errorf(op, fedwire.Code_CODE_BAD_REQUEST, "user: %v", err)
	}
	if env.GetPresence() < 1 || env.GetPresence() > 3 {
		return errorf(op, fedwire.Code_CODE_BAD_REQUEST, "presence state %d", env.GetPresence())
	}
	if u.Domain == self {
		return errorf(op, fedwire.Code_CODE_FORBIDDEN, "%s may not tell %s the presence of its own user %s", origin, self, u)
	}
	if u.Domain != origin && len(env.GetRecipients()) == 0 {
		return errorf(op, fedwire.Code_CODE_FORBIDDEN, "%s relays the presence of %s to nobody", origin, u)
	}
	for _, r := range env.GetRecipients() {
		ru, err := identity.ParseUser(r)
		if err != nil {
			return errorf(op, fedwire.Code_CODE_BAD_REQUEST, "recipient: %v", err)
		}
		if ru.Domain != self {
			return errorf(op, fedwire.Code_CODE_BAD_REQUEST, "recipient %s is not on %s", ru, self)
		}
	}
	return nil
}
