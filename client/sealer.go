package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"google.golang.org/protobuf/proto"

	"hearth/client/account"
	"hearth/client/convstate"
	"hearth/client/directory"
	"hearth/client/e2ee"
	"hearth/client/roster"
	"hearth/client/store"
	"hearth/homeserver/wire"
)

// sealer makes sure an outbox item's conversation exists and has every
// device of its users, then encrypts the item (Seal of the outbox Sender).
// A first message to a user creates the 1:1 conversation here, or joins by
// external commit the one another device of this user already has.
type sealer struct {
	st             *store.Store
	states         convstate.States
	mls            e2ee.Engine
	dir            *directory.Directory
	rosters        *roster.Roster
	acct           *account.Manager
	groups         *Groups // group control messages
	heal           *healer // out-of-step conversations rejoined first
	call           func(ctx context.Context, op string, f *wire.ClientFrame) (*wire.ServerFrame, error)
	callIdempotent func(ctx context.Context, op string, f *wire.ClientFrame) (*wire.ServerFrame, error)
	newID          func() (string, error)
	log            *slog.Logger
	warm           warming // roster checks started ahead (prewarm.go)
	// parked retries a parked conversation and fails (retryably) while it
	// must still wait: nothing is encrypted in an epoch the hub has left.
	parked func(ctx context.Context, conv string) error
}

// seal makes sure the conversation exists and has every device of its
// users, then encrypts the item and stores the request with the new group
// state in one transaction.
func (sl *sealer) seal(ctx context.Context, it store.OutboxItem) (store.OutboxItem, error) {
	conv := it.Conversation
	if conv == "" {
		var err error
		if conv, err = sl.directConversation(ctx, it.To); err != nil {
			return it, err
		}
	}
	it, err := sl.sealIn(ctx, conv, it)
	if err != nil && sl.gone(conv) {
		// Removed (or left) while this item waited: the state is gone,
		// and the message can never be sent.
		return it, notMemberAnymore(conv)
	}
	if errors.Is(err, store.ErrNotFound) {
		return it, wire.E("client.Send", wire.Code_CODE_NOT_FOUND, "conversation "+conv+" is not on this device", err)
	}
	return it, err
}

// gone reports whether this device was removed from conv or left it.
func (sl *sealer) gone(conv string) bool {
	gone := false
	sl.st.View(func(tx *store.Tx) error { gone = tx.Meta(goneName(conv)) != nil; return nil })
	return gone
}

// sealIn is seal for an item of the known conversation conv.
func (sl *sealer) sealIn(ctx context.Context, conv string, it store.OutboxItem) (store.OutboxItem, error) {
	if sl.gone(conv) {
		return it, notMemberAnymore(conv)
	}
	if err := sl.parked(ctx, conv); err != nil {
		return it, err
	}
	if err := sl.heal.ensure(ctx, conv); err != nil {
		return it, err
	}
	if err := sl.waitWarm(ctx, conv); err != nil {
		return it, err
	}
	for try := 0; !sl.rosters.Fresh(conv); try++ {
		err := sl.rosters.Reconcile(ctx, conv)
		if err == nil {
			sl.rosters.MarkSynced(conv)
			break
		}
		if !errors.Is(err, convstate.ErrRedo) || try == 3 {
			return it, err
		}
	}
	self, err := sl.acct.Self()
	if err != nil {
		return it, err
	}
	if err := sl.checkReachable(conv, self); err != nil {
		return it, err
	}
	var pt []byte
	if it.Control == nil {
		if pt, err = encodeItemBody(it); err != nil {
			return it, err
		}
	}
	err = sl.st.Update(func(tx *store.Tx) error {
		cur, err := tx.OutboxItem(it.ID)
		if err != nil {
			return err // sent meanwhile by another run on this profile
		}
		if cur.Payload != nil {
			it = cur // sealed meanwhile by another run: send those bytes
			return nil
		}
		if isParked(tx, conv) { // parked since the check above
			return heldErr(conv)
		}
		if cur.Body != nil {
			pt, it.Body = cur.Body, cur.Body // a receipt merged with a newer one meanwhile
		}
		g, err := sl.states.Load(tx, conv, self, sl.dir.Members(ctx, tx))
		if err != nil {
			return err
		}
		if cur.Control != nil {
			ctl, err := sl.groups.sealControl(tx, conv, g, self, cur.Control)
			if err != nil {
				return err
			}
			if pt, err = encodeControlBody(ctl); err != nil {
				return err
			}
		}
		ct, err := g.Encrypt(pt)
		if err != nil {
			return fmt.Errorf("client: encrypt: %w", err)
		}
		req := &wire.Send{ConversationId: conv, MessageId: it.ID, Kind: wire.MessageKind_MESSAGE_KIND_APPLICATION, Epoch: g.Epoch(), Payload: ct}
		if it.Payload, err = proto.Marshal(req); err != nil {
			return err
		}
		it.Conversation, it.Epoch = conv, g.Epoch()
		if cur.Control == nil && cur.Body == nil {
			it.Recipients = convstate.PeersOf(g.Members(), convstate.UserOf(self.Address))
		}
		if err := sl.states.Save(tx, conv, g); err != nil {
			return err
		}
		return tx.UpdateOutbox(it)
	})
	return it, err
}

// checkReachable refuses to encrypt for a conversation in which some other
// user has no device at all: nobody there could ever read the message.
func (sl *sealer) checkReachable(conv string, self e2ee.Self) error {
	return sl.st.View(func(tx *store.Tx) error {
		meta, err := convstate.Get(tx, conv)
		if err != nil {
			return err
		}
		return sl.states.View(tx, conv, self, sl.dir.Pinned(), func(g e2ee.Group) error {
			have := convstate.PeersOf(g.Members(), convstate.UserOf(self.Address))
			for _, p := range meta.Peers {
				if !slices.Contains(have, p) {
					return wire.Errorf("client.Send", wire.Code_CODE_NO_KEY_PACKAGES,
						"%s has no device that can receive messages yet (no published KeyPackages)", p)
				}
			}
			return nil
		})
	})
}
