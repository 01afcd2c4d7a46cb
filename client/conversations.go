package client

import (
	"context"
	"fmt"
	"slices"

	"hearth/client/convstate"
	"hearth/client/session"
	"hearth/client/store"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

// directConversation returns this device's 1:1 conversation with peer,
// joining the existing one by external commit when another device of this
// user already has one, or creating it here.
func (sl *sealer) directConversation(ctx context.Context, peer string) (string, error) {
	const op = "client.DirectConversation"
	pu, err := identity.ParseUser(peer)
	if err != nil {
		return "", wire.E(op, wire.Code_CODE_BAD_REQUEST, err)
	}
	peer = pu.String()
	var id string
	var registered bool
	sl.st.View(func(tx *store.Tx) error {
		id, _ = convstate.For(tx, peer)
		registered = id != "" && tx.Meta(convstate.RegisteredName(id)) != nil
		return nil
	})
	if id == "" {
		if id, err = sl.joinNamed(ctx, peer); err != nil || id != "" {
			return id, err
		}
		if id, err = sl.joinExisting(ctx, peer); err != nil || id != "" {
			return id, err
		}
		// The peer must exist before a conversation with it is made here:
		// a send to no user (a mistyped one, or a group this device is not
		// in yet) leaves no conversation behind that would take the name.
		if _, err := sl.dir.Fetch(ctx, nil, pu); err != nil {
			return "", err
		}
		if id, err = sl.createGroup(ctx, peer); err != nil {
			return "", err
		}
	}
	if !registered {
		return id, sl.register(ctx, id, peer)
	}
	return id, nil
}

// createGroup makes a new MLS group for a direct conversation with peer
// and stores it before the hub hears of it.
func (sl *sealer) createGroup(ctx context.Context, peer string) (string, error) {
	self, err := sl.acct.Self()
	if err != nil {
		return "", err
	}
	local, err := sl.newID()
	if err != nil {
		return "", err
	}
	su, err := identity.ParseUser(convstate.UserOf(self.Address))
	if err != nil {
		return "", err
	}
	id := local[:20] + "@" + su.Domain
	err = sl.st.Update(func(tx *store.Tx) error {
		g, err := sl.mls.Create([]byte(id), self, sl.dir.Members(ctx, tx), nil)
		if err != nil {
			return fmt.Errorf("client: create group: %w", err)
		}
		if err := sl.states.Save(tx, id, g); err != nil {
			return err
		}
		return convstate.Remember(tx, convstate.Conversation{ID: id, Peers: []string{peer}, Creator: su.String()})
	})
	return id, err
}

// register creates the conversation at the hub (this server). A conflict
// means an earlier run registered it already.
func (sl *sealer) register(ctx context.Context, id, peer string) error {
	self, err := sl.acct.Self()
	if err != nil {
		return err
	}
	var gi []byte
	err = sl.st.View(func(tx *store.Tx) (err error) {
		gi, err = sl.states.GroupInfo(tx, id, self, sl.dir.Members(ctx, tx))
		return err
	})
	if err != nil {
		return err
	}
	_, err = sl.call(ctx, "client.CreateConversation", &wire.ClientFrame{Body: &wire.ClientFrame_CreateConversation{CreateConversation: &wire.CreateConversation{
		ConversationId: id, Kind: wire.ConversationKind_CONVERSATION_KIND_DIRECT, Peers: []string{peer}, GroupInfo: gi,
	}}})
	if err != nil && !wire.Is(err, wire.Code_CODE_CONFLICT) {
		return err
	}
	return sl.st.Update(func(tx *store.Tx) error { return tx.PutMeta(convstate.RegisteredName(id), []byte{1}) })
}

// joinExisting looks for a direct conversation with peer that another
// device of this user is in, and joins it by external commit.
func (sl *sealer) joinExisting(ctx context.Context, peer string) (string, error) {
	r, err := sl.callIdempotent(ctx, "client.ListConversations", &wire.ClientFrame{Body: &wire.ClientFrame_ListConversations{ListConversations: &wire.ListConversations{}}})
	if err != nil {
		return "", err
	}
	self, err := sl.acct.Self()
	if err != nil {
		return "", err
	}
	for _, ci := range r.GetConversations().GetConversations() {
		peers := convstate.PeersOf(ci.GetMembers(), convstate.UserOf(self.Address))
		if ci.GetKind() != wire.ConversationKind_CONVERSATION_KIND_DIRECT || len(peers) != 1 || peers[0] != peer ||
			len(ci.GetGroupInfo()) == 0 || slices.Contains(ci.GetMembers(), self.Address) {
			continue
		}
		var req *wire.Send
		err := sl.st.Update(func(tx *store.Tx) error {
			g, commit, err := sl.mls.JoinExternal(ci.GetGroupInfo(), self, sl.dir.Members(ctx, tx))
			if err != nil {
				return err
			}
			if err := sl.states.Save(tx, ci.GetConversationId(), g); err != nil {
				return err
			}
			if req, err = sl.rosters.PendCommit(tx, ci.GetConversationId(), g.Epoch()-1, commit); err != nil { // the commit leaves the GroupInfo's epoch
				return err
			}
			if err := tx.PutMeta(convstate.RegisteredName(ci.GetConversationId()), []byte{1}); err != nil {
				return err
			}
			if err := tx.PutMeta(convstate.ExternalName(ci.GetConversationId()), []byte{1}); err != nil {
				return err
			}
			return convstate.Remember(tx, convstate.Conversation{ID: ci.GetConversationId(), Peers: peers, Creator: ci.GetCreator()})
		})
		if err != nil {
			sl.log.Warn("external join failed", "conversation", ci.GetConversationId(), "err", err)
			continue
		}
		err = sl.rosters.FinishCommit(ctx, ci.GetConversationId(), req)
		if err == nil || session.Retryable(err) {
			return ci.GetConversationId(), err
		}
		sl.log.Warn("external join refused", "conversation", ci.GetConversationId(), "err", err)
	}
	return "", nil
}

// joinNamed handles a send to a conversation id this device does not know
// (it looks like a user address): a conversation the hub has and that
// lists this user, which another device of the user is in but has not
// added this one to yet. This device joins it by external commit
// (decision 0006) and the item is sealed for it. "" means name is no
// conversation this user is in: it is taken for a user.
func (sl *sealer) joinNamed(ctx context.Context, name string) (string, error) {
	joined, err := sl.heal.joinNew(ctx, name)
	if err != nil || !joined {
		return "", err
	}
	return name, nil
}
