package homeserver

import (
	"context"
	"errors"
	"slices"

	"hearth/homeserver/fedlink"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/storage"
)

// Presence queries and settings (docs/presence.md): GetPresence answers
// the presence and last seen of users of this server and, by a signed
// federation query, of other servers; PresenceSettings sets who may see
// the user's last seen. Each server applies its own users' settings: the
// target's server the target's (who may see it), the reader's server the
// reader's (who hides their last seen sees nobody's).

// maxPresenceQuery bounds the users of one GetPresence.
const maxPresenceQuery = 100

func (ss *session) presenceSettings(m *wire.PresenceSettings) (*wire.ServerFrame, error) {
	const op = "homeserver.PresenceSettings"
	v := m.GetLastSeen()
	if v != wire.LastSeenVisibility_LAST_SEEN_UNSPECIFIED {
		if v < wire.LastSeenVisibility_LAST_SEEN_EVERYONE || v > wire.LastSeenVisibility_LAST_SEEN_NOBODY {
			return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "last seen must be EVERYONE, CONTACTS or NOBODY")
		}
		if err := ss.s.db.Write(ss.ctx, func(tx *storage.Tx) error { return tx.SetLastSeenVisibility(ss.userID, int(v)) }); err != nil {
			return nil, internal(op, err)
		}
	}
	var ps storage.PresenceSettings
	if err := ss.s.db.Read(ss.ctx, func(tx *storage.Tx) (err error) { ps, err = tx.PresenceSettings(ss.userID); return err }); err != nil {
		return nil, internal(op, err)
	}
	return &wire.ServerFrame{Body: &wire.ServerFrame_PresenceSettings{PresenceSettings: &wire.PresenceSettings{
		LastSeen: wire.LastSeenVisibility(ps.LastSeen)}}}, nil
}

// getPresence answers GetPresence: the users asked, in order; no users:
// the contacts' presence.
func (ss *session) getPresence(m *wire.GetPresence) (*wire.ServerFrame, error) {
	const op = "homeserver.GetPresence"
	s := ss.s
	if len(m.GetUsers()) > maxPresenceQuery {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "at most %d users per query", maxPresenceQuery)
	}
	if err := s.throttleSignal(op, ss.deviceID); err != nil {
		return nil, err
	}
	if len(m.GetUsers()) == 0 {
		l, err := s.contactsPresence(ss.ctx, ss.userID, ss.userName)
		if err != nil {
			return nil, internal(op, err)
		}
		return &wire.ServerFrame{Body: &wire.ServerFrame_PresenceList{PresenceList: l}}, nil
	}
	users := make([]identity.UserAddress, len(m.Users))
	for i, u := range m.Users {
		a, err := identity.NormalizeUserIn(u, s.cfg.Domain)
		if err != nil {
			return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "%q is not a user address", u)
		}
		users[i] = a
	}
	me := s.userAddress(ss.userName)
	out := make([]*wire.PresenceEvent, len(users))
	var local []string
	remote := map[string][]string{}
	for _, a := range users {
		if a.Domain == s.cfg.Domain {
			local = append(local, a.String())
		} else {
			remote[a.Domain] = append(remote[a.Domain], a.String())
		}
	}
	got := map[string]*wire.PresenceEvent{}
	if len(local) > 0 {
		as, err := s.presenceFor(ss.ctx, op, ss.userID, me, local, nil)
		if err != nil {
			return nil, err
		}
		for _, a := range as {
			got[a.Event.User] = a.Event
		}
	}
	for d, us := range remote {
		if s.fed == nil {
			return nil, errFedOff
		}
		vouched, err := s.sharingHubbed(ss.ctx, op, ss.userID, us)
		if err != nil {
			return nil, err
		}
		as, err := s.fed.Queries.RemotePresence(ss.ctx, d, us, vouched, me)
		if err != nil {
			return nil, err
		}
		if err := s.applyReaderSetting(ss.ctx, op, ss.userID, as, vouched); err != nil {
			return nil, err
		}
		for _, a := range as {
			got[a.Event.User] = a.Event
		}
	}
	for i, a := range users {
		ev := got[a.String()]
		if ev == nil {
			ev = &wire.PresenceEvent{User: a.String()}
		}
		out[i] = ev
	}
	return &wire.ServerFrame{Body: &wire.ServerFrame_PresenceList{PresenceList: &wire.PresenceList{Presence: out}}}, nil
}

// sharingHubbed returns the remote users among users that share a
// conversation hubbed here with local user userID.
func (s *Server) sharingHubbed(ctx context.Context, op string, userID int64, users []string) ([]string, error) {
	var out []string
	err := s.db.Read(ctx, func(tx *storage.Tx) error {
		for _, u := range users {
			ok, err := tx.SharesHubbedConversation(userID, u, s.cfg.Domain)
			if err != nil {
				return internal(op, err)
			}
			if ok {
				out = append(out, u)
			}
		}
		return nil
	})
	return out, err
}

// applyReaderSetting hides the last seen of remote users from a local
// reader whose own setting does not share theirs with them. A contact is
// a user sharing a conversation hubbed here (vouched) or one the user's
// server counts as a contact.
func (s *Server) applyReaderSetting(ctx context.Context, op string, readerID int64, as []fedlink.PresenceAnswer, vouched []string) error {
	var own storage.PresenceSettings
	if err := s.db.Read(ctx, func(tx *storage.Tx) (err error) { own, err = tx.PresenceSettings(readerID); return err }); err != nil {
		return internal(op, err)
	}
	for _, a := range as {
		contact := a.Contact || slices.Contains(vouched, a.Event.User)
		if !lastSeenAllows(own.LastSeen, contact) {
			a.Event.LastActiveMs = 0
		}
	}
	return nil
}

// presenceFor is the presence of local users (addresses of this server)
// as reader may see it: readerID > 0 is a local user; readerID 0 is
// reader, a user of another server, whose own setting its server applies
// and who is a contact of a user when they share a conversation hubbed
// here, or one hubbed at the reader's server that the user is in and
// that server vouches for (vouched).
func (s *Server) presenceFor(ctx context.Context, op string, readerID int64, reader string, users, vouched []string) ([]fedlink.PresenceAnswer, error) {
	rd, err := identity.ParseUser(reader)
	if err != nil {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "reader %q is not a user address", reader)
	}
	var out []fedlink.PresenceAnswer
	err = s.db.Read(ctx, func(tx *storage.Tx) error {
		readerVis := storage.LastSeenEveryone
		if readerID > 0 {
			own, err := tx.PresenceSettings(readerID)
			if err != nil {
				return internal(op, err)
			}
			readerVis = own.LastSeen
		}
		for _, u := range users {
			a, err := identity.ParseUser(u)
			if err != nil || a.Domain != s.cfg.Domain {
				return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "%q is not a user of %s", u, s.cfg.Domain)
			}
			t, err := tx.UserByName(a.Local)
			if errors.Is(err, storage.ErrNotFound) {
				return wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no user %s", u)
			} else if err != nil {
				return internal(op, err)
			}
			ps, err := tx.PresenceSettings(t.ID)
			if err != nil {
				return internal(op, err)
			}
			self := readerID == t.ID
			var contact bool
			switch {
			case self:
			case readerID > 0:
				contact, err = tx.SharesConversation(readerID, t.ID)
			default:
				if contact, err = tx.SharesHubbedConversation(t.ID, reader, s.cfg.Domain); err == nil && !contact && slices.Contains(vouched, a.String()) {
					contact, err = tx.InConversationHubbedAt(t.ID, rd.Domain)
				}
			}
			if err != nil {
				return internal(op, err)
			}
			st, at := s.localPresence(a.String(), ps)
			st, at = viewPresence(st, at, ps.LastSeen, readerVis, contact, self)
			out = append(out, fedlink.PresenceAnswer{Event: &wire.PresenceEvent{User: a.String(), State: st, LastActiveMs: at}, Contact: contact})
		}
		return nil
	})
	return out, err
}

// presenceLink is the Server's presence as federation sees it.
type presenceLink struct{ s *Server }

func (p presenceLink) Set(user string, st wire.PresenceState, atMs, untilMs int64) bool {
	return p.s.presence.Set(user, st, atMs, untilMs)
}

func (p presenceLink) Get(user string) (wire.PresenceState, int64) { return p.s.presence.Get(user) }

func (p presenceLink) VisibleTo(ctx context.Context, reader string, users, vouched []string) ([]fedlink.PresenceAnswer, error) {
	return p.s.presenceFor(ctx, "homeserver.federation.GetPresence", 0, reader, users, vouched)
}
