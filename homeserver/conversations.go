package homeserver

import (
	"errors"

	"hearth/homeserver/hub"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/storage"
)

const maxPeers = 16

func (ss *session) createConversation(m *wire.CreateConversation) (*wire.ServerFrame, error) {
	const op = "homeserver.CreateConversation"
	id := m.GetConversationId()
	if conv, err := ss.s.hub.CheckConversationID(op, id); err != nil || conv.Hub() != ss.s.cfg.Domain {
		if err == nil || wire.Is(err, wire.Code_CODE_UNAVAILABLE) {
			return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "a conversation created here must be LOCAL@%s", ss.s.cfg.Domain)
		}
		return nil, err
	}
	switch m.GetKind() {
	case wire.ConversationKind_CONVERSATION_KIND_DIRECT, wire.ConversationKind_CONVERSATION_KIND_GROUP:
	default:
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "conversation kind must be DIRECT or GROUP")
	}
	if len(m.GetGroupInfo()) > ss.s.cfg.MaxCommitBytes {
		return nil, wire.Errorf(op, wire.Code_CODE_TOO_LARGE, "group info over %d bytes", ss.s.cfg.MaxCommitBytes)
	}
	if len(m.GetPeers()) > maxPeers {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "at most %d peers", maxPeers)
	}
	var peers []string
	for _, p := range m.GetPeers() {
		u, err := identity.NormalizeUser(p)
		if err != nil {
			return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "invalid peer address %q", p)
		}
		peers = append(peers, u.String())
	}
	creator := ss.s.deviceAddress(ss.userName, ss.deviceID)
	c := &storage.Conversation{ID: id, Kind: int(m.GetKind()), Creator: creator, GroupInfo: m.GetGroupInfo(), CreatedMs: ss.s.nowMs()}
	var info *wire.ConversationInfo
	err := ss.s.db.Write(ss.ctx, func(tx *storage.Tx) error {
		err := tx.InsertConversation(c, []storage.Member{{Address: creator, DeviceID: ss.deviceID}}, peers)
		if errors.Is(err, storage.ErrConflict) {
			return wire.Errorf(op, wire.Code_CODE_CONFLICT, "conversation %s exists", id)
		} else if err != nil {
			return err
		}
		info, err = hub.ConversationInfo(tx, c)
		return err
	})
	if err != nil {
		return nil, internal(op, err)
	}
	return &wire.ServerFrame{Body: &wire.ServerFrame_Conversation{Conversation: info}}, nil
}

func conversationInfo(tx *storage.Tx, c *storage.Conversation) (*wire.ConversationInfo, error) {
	ms, err := tx.Members(c.ID)
	if err != nil {
		return nil, err
	}
	info := &wire.ConversationInfo{ConversationId: c.ID, Kind: wire.ConversationKind(c.Kind), Epoch: c.Epoch,
		GroupInfo: c.GroupInfo, LastSeq: c.LastSeq, Creator: c.Creator, CreatedMs: c.CreatedMs}
	for _, m := range ms {
		info.Members = append(info.Members, m.Address)
	}
	return info, nil
}

// getConversation answers members, and devices of a user who has a member
// device (a new device of that user needs the GroupInfo to join by
// external commit). Everyone else gets NOT_FOUND, so ids do not leak.
func (ss *session) getConversation(m *wire.GetConversation) (*wire.ServerFrame, error) {
	const op = "homeserver.GetConversation"
	id := m.GetConversationId()
	if _, err := ss.s.hub.CheckConversationID(op, id); err != nil {
		return nil, err
	}
	notFound := wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no conversation %s", id)
	var info *wire.ConversationInfo
	err := ss.s.db.Read(ss.ctx, func(tx *storage.Tx) error {
		c, err := tx.Conversation(id)
		if errors.Is(err, storage.ErrNotFound) {
			return notFound
		} else if err != nil {
			return err
		}
		if info, err = hub.ConversationInfo(tx, c); err != nil {
			return err
		}
		if !hub.UserOnRoster(info.Members, ss.s.user(ss.userName)) {
			return notFound
		}
		return nil
	})
	if err != nil {
		return nil, internal(op, err)
	}
	return &wire.ServerFrame{Body: &wire.ServerFrame_Conversation{Conversation: info}}, nil
}

// listConversations answers the conversations holding any device of the
// caller's user (not only the calling device): a newly linked device finds
// its user's conversations this way and asks to be added.
func (ss *session) listConversations() (*wire.ServerFrame, error) {
	const op = "homeserver.ListConversations"
	res := &wire.ConversationsResult{}
	err := ss.s.db.Read(ss.ctx, func(tx *storage.Tx) error {
		cs, err := tx.ConversationsOfUser(ss.userID)
		if err != nil {
			return err
		}
		for _, c := range cs {
			info, err := hub.ConversationInfo(tx, c)
			if err != nil {
				return err
			}
			res.Conversations = append(res.Conversations, info)
		}
		return nil
	})
	if err != nil {
		return nil, internal(op, err)
	}
	return &wire.ServerFrame{Body: &wire.ServerFrame_Conversations{Conversations: res}}, nil
}
