package hub

import (
	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/storage"
)

// CheckConversationID parses a conversation id "LOCAL@hubdomain" (LOCAL is
// 1..128 of A-Z a-z 0-9 . _ -). Conversations hubbed elsewhere need
// federation (CODE_UNAVAILABLE without it).
func (h *Hub) CheckConversationID(op, s string) (identity.ConversationID, error) {
	id, err := identity.ParseConversation(s)
	if err != nil {
		return id, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "conversation id must be LOCAL@%s (%v)", h.cfg.Domain, err)
	}
	if id.Hub() != h.cfg.Domain && !h.cfg.Federated {
		return identity.ConversationID{}, wire.Errorf(op, wire.Code_CODE_UNAVAILABLE, "conversation %s is hosted by another server; federation is not available", s)
	}
	return id, nil
}

// ConversationInfo describes c with its roster.
func ConversationInfo(tx *storage.Tx, c *storage.Conversation) (*wire.ConversationInfo, error) {
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
