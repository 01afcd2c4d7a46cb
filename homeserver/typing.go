package homeserver

import (
	"hearth/homeserver/wire"
	"hearth/storage"
)

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
