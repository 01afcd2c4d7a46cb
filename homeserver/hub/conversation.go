package hub

import (
	"errors"

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

// MaxPeers is the most peers a CreateConversation may name.
const MaxPeers = 16

// ValidateCreate checks a CreateConversation: an id hubbed here, a kind,
// the GroupInfo's size and the peers, which it returns canonical.
func (h *Hub) ValidateCreate(op string, m *wire.CreateConversation) (peers []string, err error) {
	if conv, err := h.CheckConversationID(op, m.GetConversationId()); err != nil || conv.Hub() != h.cfg.Domain {
		if err == nil || wire.Is(err, wire.Code_CODE_UNAVAILABLE) {
			return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "a conversation created here must be LOCAL@%s", h.cfg.Domain)
		}
		return nil, err
	}
	switch m.GetKind() {
	case wire.ConversationKind_CONVERSATION_KIND_DIRECT, wire.ConversationKind_CONVERSATION_KIND_GROUP:
	default:
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "conversation kind must be DIRECT or GROUP")
	}
	if len(m.GetGroupInfo()) > h.cfg.MaxCommitBytes {
		return nil, wire.Errorf(op, wire.Code_CODE_TOO_LARGE, "group info over %d bytes", h.cfg.MaxCommitBytes)
	}
	if len(m.GetPeers()) > MaxPeers {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "at most %d peers", MaxPeers)
	}
	for _, p := range m.GetPeers() {
		u, err := identity.NormalizeUser(p)
		if err != nil {
			return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "invalid peer address %q", p)
		}
		peers = append(peers, u.String())
	}
	return peers, nil
}

// Create stores a validated new conversation (ValidateCreate) with its
// creating device as the only member (CODE_CONFLICT if the id is taken).
func (h *Hub) Create(op string, tx *storage.Tx, m *wire.CreateConversation, creator storage.Member, peers []string, nowMs int64) (*wire.ConversationInfo, error) {
	c := &storage.Conversation{ID: m.GetConversationId(), Kind: int(m.GetKind()), Creator: creator.Address,
		GroupInfo: m.GetGroupInfo(), CreatedMs: nowMs}
	err := tx.InsertConversation(c, []storage.Member{creator}, peers)
	if errors.Is(err, storage.ErrConflict) {
		return nil, wire.Errorf(op, wire.Code_CODE_CONFLICT, "conversation %s exists", c.ID)
	} else if err != nil {
		return nil, err
	}
	return ConversationInfo(tx, c)
}

// Visible describes conversation id to user: to members, and to devices of
// a user who has a member device (a new device of that user needs the
// GroupInfo to join by external commit). Everyone else gets NOT_FOUND, so
// ids do not leak.
func (h *Hub) Visible(op string, tx *storage.Tx, id string, user identity.UserAddress) (*wire.ConversationInfo, error) {
	notFound := wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no conversation %s", id)
	c, err := tx.Conversation(id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, notFound
	} else if err != nil {
		return nil, err
	}
	info, err := ConversationInfo(tx, c)
	if err != nil {
		return nil, err
	}
	if !UserOnRoster(info.Members, user) {
		return nil, notFound
	}
	return info, nil
}

// OfUser describes the conversations holding any device of the user (not
// only one device): a newly linked device finds its user's conversations
// this way and asks to be added.
func OfUser(tx *storage.Tx, userID int64) ([]*wire.ConversationInfo, error) {
	cs, err := tx.ConversationsOfUser(userID)
	if err != nil {
		return nil, err
	}
	out := make([]*wire.ConversationInfo, 0, len(cs))
	for _, c := range cs {
		info, err := ConversationInfo(tx, c)
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	return out, nil
}
