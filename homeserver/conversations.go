package homeserver

import (
	"hearth/homeserver/hub"
	"hearth/homeserver/wire"
	"hearth/storage"
)

// conversationRequest serves CreateConversation, GetConversation and
// ListConversations with the hub's rules (homeserver/hub); handled is false
// for other requests.
func (ss *session) conversationRequest(f *wire.ClientFrame) (resp *wire.ServerFrame, err error, handled bool) {
	var info *wire.ConversationInfo
	switch b := f.Body.(type) {
	case *wire.ClientFrame_CreateConversation:
		const op = "homeserver.CreateConversation"
		m := b.CreateConversation
		peers, err := ss.s.hub.ValidateCreate(op, m)
		if err != nil {
			return nil, err, true
		}
		creator := storage.Member{Address: ss.s.deviceAddress(ss.userName, ss.deviceID), DeviceID: ss.deviceID}
		err = ss.s.db.Write(ss.ctx, func(tx *storage.Tx) (err error) {
			info, err = ss.s.hub.Create(op, tx, m, creator, peers, ss.s.nowMs())
			return err
		})
		if err != nil {
			return nil, internal(op, err), true
		}
	case *wire.ClientFrame_GetConversation:
		const op = "homeserver.GetConversation"
		id := b.GetConversation.GetConversationId()
		if _, err := ss.s.hub.CheckConversationID(op, id); err != nil {
			return nil, err, true
		}
		err := ss.s.db.Read(ss.ctx, func(tx *storage.Tx) (err error) {
			info, err = ss.s.hub.Visible(op, tx, id, ss.s.user(ss.userName))
			return err
		})
		if err != nil {
			return nil, internal(op, err), true
		}
	case *wire.ClientFrame_ListConversations:
		const op = "homeserver.ListConversations"
		res := &wire.ConversationsResult{}
		err := ss.s.db.Read(ss.ctx, func(tx *storage.Tx) (err error) {
			res.Conversations, err = hub.OfUser(tx, ss.userID)
			return err
		})
		if err != nil {
			return nil, internal(op, err), true
		}
		return &wire.ServerFrame{Body: &wire.ServerFrame_Conversations{Conversations: res}}, nil, true
	default:
		return nil, nil, false
	}
	return &wire.ServerFrame{Body: &wire.ServerFrame_Conversation{Conversation: info}}, nil, true
}
