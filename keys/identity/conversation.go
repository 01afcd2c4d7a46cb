package identity

import (
	"fmt"
	"strings"
)

// MaxConversationLocalLen is the longest LOCAL part of a conversation id.
const MaxConversationLocalLen = 128

// ConversationID is a conversation id "LOCAL@hubdomain": LOCAL is chosen
// by the creating device (1-128 of A-Z a-z 0-9 . _ -), the domain is the
// server that hubs the conversation. The zero value is no conversation.
type ConversationID struct {
	local string
	hub   string
}

// ParseConversation parses a conversation id "LOCAL@hubdomain".
func ParseConversation(s string) (ConversationID, error) {
	local, hub, ok := strings.Cut(s, "@")
	if !ok {
		return ConversationID{}, fmt.Errorf("%w: conversation id %q is not LOCAL@domain", ErrAddress, s)
	}
	if len(local) == 0 || len(local) > MaxConversationLocalLen {
		return ConversationID{}, fmt.Errorf("%w: conversation id %q: LOCAL length %d not in 1..%d", ErrAddress, s, len(local), MaxConversationLocalLen)
	}
	for i := 0; i < len(local); i++ {
		c := local[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return ConversationID{}, fmt.Errorf("%w: conversation id has invalid character %q", ErrAddress, c)
		}
	}
	if err := checkDomain(hub); err != nil {
		return ConversationID{}, fmt.Errorf("%w: conversation id %q: %v", ErrAddress, s, err)
	}
	return ConversationID{local: local, hub: hub}, nil
}

// Hub is the domain of the server that hubs the conversation.
func (c ConversationID) Hub() string { return c.hub }

// Local is the part before the @.
func (c ConversationID) Local() string { return c.local }

// IsZero reports whether c is the zero value.
func (c ConversationID) IsZero() bool { return c == ConversationID{} }

func (c ConversationID) String() string {
	if c.IsZero() {
		return ""
	}
	return c.local + "@" + c.hub
}

// Domain is the domain of a user's device.
func (d DeviceAddress) Domain() string { return d.User.Domain }
