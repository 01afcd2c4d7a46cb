package main

import (
	"fmt"
	"strings"

	"hearth/client"
	"hearth/client/store"
)

// Conversation events in recv's and history's text form read like a chat
// app's: "alice created the group Team", "alice added you", "bob left",
// with group names rather than ids and "you" for this device's user.
// --json prints the events as they are stored.

// eventNames is what the text form needs besides the event itself.
type eventNames struct {
	self    string // this device's user (user@domain)
	group   func(conv string) (string, bool)
	leaving map[string]bool // conversation+user seen leaving in this run
}

func newEventNames(c *client.Client) *eventNames {
	n := &eventNames{group: c.GroupName, leaving: map[string]bool{}}
	if a, err := c.Account(); err == nil {
		n.self = a.User
	}
	return n
}

// who is a user as events name it: "you", the local part for a user of
// this device's domain, else the whole address.
func (n *eventNames) who(user string) string {
	if user == "" {
		return "someone"
	}
	if user == n.self {
		return "you"
	}
	local, domain, ok := strings.Cut(user, "@")
	if _, selfDomain, _ := strings.Cut(n.self, "@"); ok && domain == selfDomain {
		return local
	}
	return user
}

// groupOf is "the group NAME", or "the group" when the name is not known.
func (n *eventNames) groupOf(conv string) string {
	if name, ok := n.group(conv); ok {
		return "the group " + name
	}
	return "the group"
}

// eventText is the sentence for event m; "" when there is nothing to say
// (the removal of a member already reported as leaving).
func (n *eventNames) eventText(m store.Message) string {
	by, user := n.who(m.From), n.who(m.User)
	grp := n.groupOf(m.Conversation)
	switch m.Event {
	case "created":
		return fmt.Sprintf("%s created the group %s", user, m.Text)
	case "joined":
		if by == "you" {
			return fmt.Sprintf("this device joined the group %s", m.Text)
		}
		return fmt.Sprintf("%s added you to the group %s", by, m.Text)
	case "member_added":
		return fmt.Sprintf("%s added %s", by, user)
	case "member_removed":
		switch {
		case n.leaving[m.Conversation+" "+m.User]:
			return ""
		case m.User == m.From:
			return fmt.Sprintf("%s left", user)
		}
		return fmt.Sprintf("%s removed %s", by, user)
	case "leaving":
		n.leaving[m.Conversation+" "+m.User] = true
		return fmt.Sprintf("%s left %s", user, grp)
	case "left":
		return fmt.Sprintf("you left %s", grp)
	case "renamed":
		return fmt.Sprintf("%s renamed the group to %s", by, m.Text)
	case "promoted":
		return fmt.Sprintf("%s made %s an admin", by, user)
	case "demoted":
		return fmt.Sprintf("%s removed %s as admin", by, user)
	case "removed":
		return fmt.Sprintf("this device is no longer a member of %s", grp)
	case "undecryptable":
		return fmt.Sprintf("%s in %s could not be decrypted on this device (%s)", plural(m.Count, "message"), n.conversation(m.Conversation), m.Reason)
	case "rejoin_failed":
		return fmt.Sprintf("this device could not rejoin %s (%s)", n.conversation(m.Conversation), m.Reason)
	case "commit_refused":
		return fmt.Sprintf("a change to %s by %s was refused: %s", n.conversation(m.Conversation), user, m.Text)
	case client.EventDeliveryFailed:
		return fmt.Sprintf("a message could not be delivered to the server %s", m.Text)
	}
	return strings.TrimSpace(fmt.Sprintf("[%s] %s %s", m.Event, m.User, m.Text))
}

// conversation names a conversation: its group name, else its id.
func (n *eventNames) conversation(conv string) string {
	if name, ok := n.group(conv); ok {
		return "the group " + name
	}
	return "conversation " + conv
}
