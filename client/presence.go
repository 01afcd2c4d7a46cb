package client

import (
	"context"
	"strings"
	"time"

	"hearth/homeserver/wire"
)

// Presence queries and the last-seen setting (docs/presence.md).

// presenceSignals passes presence pushes (one, or the contacts' list a
// session gets when it connects) to fn, leaving out a presence equal to
// the last one passed on for the user: the list repeats what is known.
func (c *Client) presenceSignals(fn func(Signal), f *wire.ServerFrame) {
	evs := f.GetPresenceList().GetPresence()
	if ev := f.GetPresence(); ev != nil {
		evs = []*wire.PresenceEvent{ev}
	}
	for _, ev := range evs {
		if ev.GetState() == wire.PresenceState_PRESENCE_STATE_UNSPECIFIED {
			continue
		}
		now := presenceSeen{ev.GetState(), ev.GetLastActiveMs()}
		c.mu.Lock()
		if c.seen == nil {
			c.seen = map[string]presenceSeen{}
		}
		old, ok := c.seen[ev.GetUser()]
		c.seen[ev.GetUser()] = now
		c.mu.Unlock()
		if !ok || old != now {
			fn(Signal{Event: "presence", User: ev.GetUser(), State: presenceName(ev.GetState()), LastActiveMs: ev.GetLastActiveMs()})
		}
	}
}

// presenceSeen is the last presence of a user passed to OnSignal.
type presenceSeen struct {
	state wire.PresenceState
	at    int64
}

// Presence is a user's presence as this user may see it.
type Presence struct {
	User string
	// State is "online", "away", "offline", or "unknown" when the user's
	// setting does not share it with this user (not a contact).
	State string
	// LastSeen is when the user was last online (for "away" and
	// "offline"; when the state was set for "online"); zero when hidden by
	// the user's setting or this user's own, or never seen.
	LastSeen time.Time
}

// GetPresence asks the presence and last seen of users (user@domain, on
// any server; at most 100).
func (c *Client) GetPresence(ctx context.Context, users []string) ([]Presence, error) {
	const op = "client.GetPresence"
	if len(users) == 0 {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "name at least one user")
	}
	r, err := c.link.callIdempotent(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_GetPresence{GetPresence: &wire.GetPresence{Users: users}}})
	if err != nil {
		return nil, err
	}
	var out []Presence
	for _, ev := range r.GetPresenceList().GetPresence() {
		p := Presence{User: ev.GetUser(), State: "unknown"}
		if ev.GetState() != wire.PresenceState_PRESENCE_STATE_UNSPECIFIED {
			p.State = presenceName(ev.GetState())
		}
		if ev.GetLastActiveMs() > 0 {
			p.LastSeen = time.UnixMilli(ev.GetLastActiveMs()).UTC()
		}
		out = append(out, p)
	}
	return out, nil
}

// RefreshPresence asks the server the presence of this user's contacts
// and passes what changed to the OnSignal function: presence signals are
// lossy, so a long-running receiver calls it now and then.
func (c *Client) RefreshPresence(ctx context.Context) error {
	const op = "client.RefreshPresence"
	r, err := c.link.call(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_GetPresence{GetPresence: &wire.GetPresence{}}})
	if err != nil {
		return err
	}
	c.signal(&wire.ServerFrame{Body: &wire.ServerFrame_PresenceList{PresenceList: r.GetPresenceList()}})
	return nil
}

// RefreshPresenceEvery calls RefreshPresence now and then every d until
// ctx ends.
func (c *Client) RefreshPresenceEvery(ctx context.Context, d time.Duration) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		if err := c.RefreshPresence(ctx); err != nil {
			c.log.Debug("presence refresh failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// LastSeen sets who may see this user's last seen ("everyone",
// "contacts" or "nobody"; "" only reads it) and returns the setting in
// force. The server keeps it, so every device of the user sees the same.
func (c *Client) LastSeen(ctx context.Context, who string) (string, error) {
	const op = "client.LastSeen"
	var v wire.LastSeenVisibility
	if who != "" {
		n, ok := wire.LastSeenVisibility_value["LAST_SEEN_"+strings.ToUpper(who)]
		if !ok || n == int32(wire.LastSeenVisibility_LAST_SEEN_UNSPECIFIED) {
			return "", wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "last seen must be everyone, contacts or nobody, not %q", who)
		}
		v = wire.LastSeenVisibility(n)
	}
	r, err := c.link.callIdempotent(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_PresenceSettings{PresenceSettings: &wire.PresenceSettings{LastSeen: v}}})
	if err != nil {
		return "", err
	}
	return strings.ToLower(strings.TrimPrefix(r.GetPresenceSettings().GetLastSeen().String(), "LAST_SEEN_")), nil
}
