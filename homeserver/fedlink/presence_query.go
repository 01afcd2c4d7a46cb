package fedlink

import (
	"context"
	"slices"

	"hearth/federation/fedwire"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

// Presence queries: a server asks another the presence and last seen of
// that server's users for one of its own users (the reader). The answering
// server applies its users' last-seen settings; the asking server checks
// that every answer is about a user it asked for, of that server, and
// applies its reader's own setting (homeserver/presence_query.go).

// maxPresenceQuery bounds the users of one presence query.
const maxPresenceQuery = 100

// RemotePresence asks domain the presence of users (its users) for reader;
// vouched are those that share a conversation hubbed here with reader.
func (f *Queries) RemotePresence(ctx context.Context, domain string, users, vouched []string, reader string) ([]PresenceAnswer, error) {
	const op = "homeserver.GetPresence"
	res, err := f.query(ctx, op, domain, &fedwire.Query{Body: &fedwire.Query_GetPresence{GetPresence: &fedwire.GetPresence{
		Users: users, Requester: reader, Vouched: vouched}}})
	if err != nil {
		return nil, err
	}
	var out []PresenceAnswer
	for _, p := range res.GetPresence().GetPresence() {
		if !slices.Contains(users, p.GetUser()) {
			return nil, wire.Errorf(op, wire.Code_CODE_UNAVAILABLE, "%s answered for %q, which was not asked", domain, p.GetUser())
		}
		if p.GetState() > uint32(wire.PresenceState_PRESENCE_STATE_OFFLINE) || p.GetLastActiveMs() < 0 {
			return nil, wire.Errorf(op, wire.Code_CODE_UNAVAILABLE, "%s answered an invalid presence for %s", domain, p.GetUser())
		}
		out = append(out, PresenceAnswer{Event: &wire.PresenceEvent{User: p.User, State: wire.PresenceState(p.State), LastActiveMs: p.LastActiveMs},
			Contact: p.GetContact()})
	}
	return out, nil
}

// answerPresence answers a presence query about this server's users.
func (f *Queries) answerPresence(ctx context.Context, origin string, q *fedwire.GetPresence) (*fedwire.QueryResult, error) {
	const op = "homeserver.federation.GetPresence"
	if r, err := identity.ParseUser(q.GetRequester()); err != nil || r.Domain != origin {
		return nil, wire.Errorf(op, wire.Code_CODE_FORBIDDEN, "requester must be a user of %s", origin)
	}
	if n := len(q.GetUsers()); n == 0 || n > maxPresenceQuery {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "1 to %d users per query, not %d", maxPresenceQuery, n)
	}
	if len(q.GetVouched()) > maxPresenceQuery {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "at most %d vouched users", maxPresenceQuery)
	}
	as, err := f.presence.VisibleTo(ctx, q.GetRequester(), q.GetUsers(), q.GetVouched())
	if err != nil {
		return nil, err
	}
	out := &fedwire.PresenceResult{}
	for _, a := range as {
		out.Presence = append(out.Presence, &fedwire.PresenceInfo{User: a.Event.User, State: uint32(a.Event.State),
			LastActiveMs: a.Event.LastActiveMs, Contact: a.Contact})
	}
	return &fedwire.QueryResult{Body: &fedwire.QueryResult_Presence{Presence: out}}, nil
}
