package homeserver

import (
	"context"
	"sync"

	"hearth/homeserver/wire"
	"hearth/storage"
)

// Presence keeps each user's presence. MemoryPresence keeps it in this
// process; a multi-node mode replaces it (DESIGN.md "Scale-out seam").
type Presence interface {
	Set(user string, state wire.PresenceState, atMs int64)
	Get(user string) (state wire.PresenceState, lastActiveMs int64)
}

// MemoryPresence is the in-memory Presence.
type MemoryPresence struct {
	mu sync.Mutex
	m  map[string]presenceEntry
}

type presenceEntry struct {
	state wire.PresenceState
	at    int64
}

var _ Presence = (*MemoryPresence)(nil)

// NewMemoryPresence returns an empty presence table.
func NewMemoryPresence() *MemoryPresence { return &MemoryPresence{m: map[string]presenceEntry{}} }

// Set records a user's state.
func (p *MemoryPresence) Set(user string, st wire.PresenceState, at int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m[user] = presenceEntry{st, at}
}

// Get returns a user's state; OFFLINE when unknown.
func (p *MemoryPresence) Get(user string) (wire.PresenceState, int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.m[user]
	if !ok {
		return wire.PresenceState_PRESENCE_STATE_OFFLINE, 0
	}
	return e.state, e.at
}

// userOnline marks a user online when one of its active devices connects,
// and tells that session who of its peers is online or away.
func (s *Server) userOnline(ss *session) {
	var addrs []string
	for _, p := range s.setPresence(ss, wire.PresenceState_PRESENCE_STATE_ONLINE) {
		if p.UserID != ss.userID {
			addrs = append(addrs, s.userAddress(p.Name))
		}
	}
	if s.fed != nil {
		addrs = append(addrs, s.fed.Signals.RemotePeers(ss.userID)...)
	}
	for _, addr := range addrs {
		if st, at := s.presence.Get(addr); st == wire.PresenceState_PRESENCE_STATE_ONLINE || st == wire.PresenceState_PRESENCE_STATE_AWAY {
			ss.pushEphemeral(&wire.ServerFrame{Body: &wire.ServerFrame_Presence{Presence: &wire.PresenceEvent{User: addr, State: st, LastActiveMs: at}}})
		}
	}
}

// userOffline marks a user offline when its last session ends.
func (s *Server) userOffline(ss *session) {
	s.setPresence(ss, wire.PresenceState_PRESENCE_STATE_OFFLINE)
}

// setPresence records a state and pushes it (lossy) to the online sessions
// of every user sharing a conversation with this user; it returns those users.
func (s *Server) setPresence(ss *session, st wire.PresenceState) []storage.Peer {
	addr := s.userAddress(ss.userName)
	now := s.nowMs()
	s.presence.Set(addr, st, now)
	var peers []storage.Peer
	err := s.db.Read(context.Background(), func(tx *storage.Tx) (err error) { peers, err = tx.ConversationPeers(ss.userID); return err })
	if err != nil {
		s.log.Warn("presence: peers lookup failed", "err", err)
		return nil
	}
	ids := make([]int64, len(peers))
	for i, p := range peers {
		ids[i] = p.UserID
	}
	ev := &wire.ServerFrame{Body: &wire.ServerFrame_Presence{Presence: &wire.PresenceEvent{User: addr, State: st, LastActiveMs: now}}}
	for _, o := range s.reg.sessionsOfUsers(ids) {
		if o != ss && o.status.Load() == int32(wire.DeviceStatus_DEVICE_STATUS_ACTIVE) {
			o.pushEphemeral(ev)
		}
	}
	if s.fed != nil {
		s.fed.Signals.SendPresence(ss.userID, addr, st, now)
	}
	return peers
}

func (ss *session) setPresence(m *wire.SetPresence) (*wire.ServerFrame, error) {
	const op = "homeserver.SetPresence"
	switch m.GetState() {
	case wire.PresenceState_PRESENCE_STATE_ONLINE, wire.PresenceState_PRESENCE_STATE_AWAY, wire.PresenceState_PRESENCE_STATE_OFFLINE:
	default:
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "presence state must be ONLINE, AWAY or OFFLINE")
	}
	if err := ss.s.throttleSignal(op, ss.deviceID); err != nil {
		return nil, err
	}
	ss.s.setPresence(ss, m.State)
	return okFrame(), nil
}

func (s *Server) throttleSignal(op, deviceID string) error {
	if ok, wait := s.limits.allow("signal:"+deviceID, s.now(), typingPerSec, typingBurst); !ok {
		return &wire.Error{Op: op, Kind: wire.Code_CODE_RATE_LIMITED, Msg: "signalling too fast", RetryAfter: max(wait.Milliseconds(), 1)}
	}
	return nil
}

// typing forwards a typing signal to the online member devices of the
// conversation (lossy: a slow client misses it).
func (ss *session) typing(m *wire.Typing) (*wire.ServerFrame, error) {
	const op = "homeserver.Typing"
	if _, err := ss.s.hub.CheckConversationID(op, m.GetConversationId()); err != nil {
		return nil, err
	}
	if err := ss.s.throttleSignal(op, ss.deviceID); err != nil {
		return nil, err
	}
	me := ss.s.deviceAddress(ss.userName, ss.deviceID)
	var members []storage.Member
	err := ss.s.db.Read(ss.ctx, func(tx *storage.Tx) (err error) { members, err = tx.Members(m.ConversationId); return err })
	if err != nil {
		return nil, internal(op, err)
	}
	var ids []string
	isMember := false
	for _, mb := range members {
		if mb.Address == me {
			isMember = true
		} else if mb.DeviceID != "" {
			ids = append(ids, mb.DeviceID)
		}
	}
	if !isMember {
		return nil, wire.Errorf(op, wire.Code_CODE_NOT_MEMBER, "not a member of %s", m.ConversationId)
	}
	ev := &wire.ServerFrame{Body: &wire.ServerFrame_Typing{Typing: &wire.TypingEvent{
		ConversationId: m.ConversationId, User: ss.s.userAddress(ss.userName), Typing: m.Typing}}}
	for _, o := range ss.s.reg.sessionsOfDevices(ids) {
		o.pushEphemeral(ev)
	}
	if ss.s.fed != nil {
		ss.s.fed.Signals.RelayTyping(m.ConversationId, me, m.Typing, members, "")
	}
	return okFrame(), nil
}
