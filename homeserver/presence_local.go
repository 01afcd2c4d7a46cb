package homeserver

import (
	"context"

	"hearth/homeserver/wire"
	"hearth/storage"
)

// This server's users' presence (docs/presence.md). A user is ONLINE
// from when an active session (one that is not passive) of an active
// device connects until the last such session ends, then OFFLINE; an
// explicit SetPresence (from any session) sets ONLINE, AWAY or OFFLINE.
// Set by a passive session while no active session holds the user, an
// ONLINE or AWAY state lasts PresenceConfig.Lease and then lapses to
// OFFLINE. Passive sessions (one-shot commands) change nothing by
// connecting or ending. Every change is pushed (lossy) to the online
// sessions of the users sharing a conversation with the user and sent
// to the servers sharing one (fedlink/presence.go); the time of a change
// to AWAY or OFFLINE is stored as the user's last seen.

// maxPresenceContacts bounds the users in one contacts' presence list.
const maxPresenceContacts = 1000

// userOnline marks a user online when an active session of an active
// device connects, and tells that session its contacts' presence.
func (s *Server) userOnline(ss *session) {
	if ss.passive {
		return
	}
	addr := s.userAddress(ss.userName)
	s.changePresence(ss.userID, ss.userName, wire.PresenceState_PRESENCE_STATE_ONLINE, 0, ss, func() bool {
		held := s.reg.presenceHeld(ss.userID)
		ss.presenceOn.Store(true)
		st, _ := s.presence.Get(addr)
		return !held || st != wire.PresenceState_PRESENCE_STATE_ONLINE // already online: no news
	})
	if l, err := s.contactsPresence(ss.ctx, ss.userID, ss.userName); err != nil {
		s.log.Warn("presence: contacts' presence", "err", err)
	} else if len(l.Presence) > 0 {
		// On the stream, not as a datagram: it may go out before the
		// client reads datagrams, and it is what makes presence converge
		// after a reconnect.
		ss.pushOnStream(&wire.ServerFrame{Body: &wire.ServerFrame_PresenceList{PresenceList: l}})
	}
}

// userOffline marks a user offline when its last active session ended
// (ss, already unregistered).
func (s *Server) userOffline(ss *session) {
	if !ss.presenceOn.Load() {
		return
	}
	s.changePresence(ss.userID, ss.userName, wire.PresenceState_PRESENCE_STATE_OFFLINE, 0, ss, func() bool {
		return !s.reg.presenceHeld(ss.userID)
	})
}

// changePresence records st for the user (lapsing at untilMs, 0: never)
// when cond (nil: always) holds, pushes it to the online sessions of the
// users sharing a conversation with the user (but from) and sends it to
// the servers sharing one. cond runs under presMu, so that a session
// connecting and the last one ending record their states in order.
func (s *Server) changePresence(userID int64, name string, st wire.PresenceState, untilMs int64, from *session, cond func() bool) {
	addr := s.userAddress(name)
	var peers []storage.PresencePeer
	var own storage.PresenceSettings
	err := s.db.Read(context.Background(), func(tx *storage.Tx) (err error) {
		if own, err = tx.PresenceSettings(userID); err != nil {
			return err
		}
		peers, err = tx.PresencePeers(userID)
		return err
	})
	if err != nil {
		s.log.Warn("presence: peers lookup failed", "err", err)
		return
	}
	s.presMu.Lock()
	if cond != nil && !cond() {
		s.presMu.Unlock()
		return
	}
	now := s.nowMs()
	s.presence.Set(addr, st, now, untilMs)
	for _, p := range peers {
		_, at := viewPresence(st, now, own.LastSeen, p.Settings.LastSeen, true, p.UserID == userID)
		ev := &wire.ServerFrame{Body: &wire.ServerFrame_Presence{Presence: &wire.PresenceEvent{User: addr, State: st, LastActiveMs: at}}}
		for _, o := range s.reg.sessionsOfUsers([]int64{p.UserID}) {
			if o != from && !o.passive && o.status.Load() == int32(wire.DeviceStatus_DEVICE_STATUS_ACTIVE) {
				o.pushEphemeral(ev)
			}
		}
	}
	if s.fed != nil {
		// Remote readers' own settings are applied by their servers.
		_, at := viewPresence(st, now, own.LastSeen, storage.LastSeenEveryone, true, false)
		s.fed.Signals.SendPresence(userID, addr, st, at, s.presenceTTL())
	}
	s.presMu.Unlock()
	if !present(st) {
		err := s.db.Write(context.Background(), func(tx *storage.Tx) error { return tx.SetLastSeenMs(userID, now) })
		if err != nil {
			s.log.Warn("presence: store last seen", "err", err)
		}
	}
}

func (ss *session) setPresence(m *wire.SetPresence) (*wire.ServerFrame, error) {
	const op = "homeserver.SetPresence"
	st := m.GetState()
	switch st {
	case wire.PresenceState_PRESENCE_STATE_ONLINE, wire.PresenceState_PRESENCE_STATE_AWAY, wire.PresenceState_PRESENCE_STATE_OFFLINE:
	default:
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "presence state must be ONLINE, AWAY or OFFLINE")
	}
	if err := ss.s.throttleSignal(op, ss.deviceID); err != nil {
		return nil, err
	}
	var until int64
	if present(st) && !ss.s.reg.presenceHeld(ss.userID) {
		until = ss.s.nowMs() + ss.s.cfg.Presence.Lease.Milliseconds()
	}
	ss.s.changePresence(ss.userID, ss.userName, st, until, ss, nil)
	return okFrame(), nil
}

// contactsPresence is the presence of the users sharing a conversation
// with the user, as the user may see it: this server's users, and the
// users of other servers whose presence arrived since this server
// started (at most maxPresenceContacts).
func (s *Server) contactsPresence(ctx context.Context, userID int64, name string) (*wire.PresenceList, error) {
	var own storage.PresenceSettings
	var peers []storage.PresencePeer
	err := s.db.Read(ctx, func(tx *storage.Tx) (err error) {
		if own, err = tx.PresenceSettings(userID); err != nil {
			return err
		}
		peers, err = tx.PresencePeers(userID)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := &wire.PresenceList{}
	for _, p := range peers {
		if p.UserID == userID {
			continue
		}
		if len(out.Presence) == maxPresenceContacts {
			break
		}
		addr := s.userAddress(p.Name)
		st, at := s.localPresence(addr, p.Settings)
		st, at = viewPresence(st, at, p.Settings.LastSeen, own.LastSeen, true, false)
		out.Presence = append(out.Presence, &wire.PresenceEvent{User: addr, State: st, LastActiveMs: at})
	}
	if s.fed != nil {
		for _, u := range s.fed.Signals.RemotePeers(userID) {
			if len(out.Presence) >= maxPresenceContacts {
				break
			}
			st, at := s.presence.Get(u)
			if own.LastSeen == storage.LastSeenNobody {
				at = 0
			}
			out.Presence = append(out.Presence, &wire.PresenceEvent{User: u, State: st, LastActiveMs: at})
		}
	}
	return out, nil
}

// localPresence is a local user's recorded state, OFFLINE at the stored
// last seen when this process has not seen the user.
func (s *Server) localPresence(addr string, ps storage.PresenceSettings) (wire.PresenceState, int64) {
	st, at := s.presence.Get(addr)
	if !present(st) && ps.LastSeenMs > at {
		at = ps.LastSeenMs
	}
	return st, at
}

// viewPresence is what a reader sees of a user's presence (st, at): the
// state when the reader is a contact or the user shares their last seen
// with everyone, else UNSPECIFIED; the time only when both the user's
// setting (targetVis) and the reader's own (readerVis: who hides their
// last seen sees nobody's) allow it. A user sees all of their own.
func viewPresence(st wire.PresenceState, at int64, targetVis, readerVis int, contact, self bool) (wire.PresenceState, int64) {
	if self {
		return st, at
	}
	if !contact && targetVis != storage.LastSeenEveryone {
		return wire.PresenceState_PRESENCE_STATE_UNSPECIFIED, 0
	}
	if !lastSeenAllows(targetVis, contact) || !lastSeenAllows(readerVis, contact) {
		at = 0
	}
	return st, at
}

// lastSeenAllows reports whether visibility v lets a reader (a contact or
// not) see the last seen.
func lastSeenAllows(v int, contact bool) bool {
	switch v {
	case storage.LastSeenContacts:
		return contact
	case storage.LastSeenNobody:
		return false
	}
	return true
}
