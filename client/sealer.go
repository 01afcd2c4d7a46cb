package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

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
	// live reports whether the session is connected and has processed
	// everything the server announced (sealQueued).
	live func() bool
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
	if errors.Is(err, convstate.ErrDamagedState) {
		// This device's own state does not load: it rejoins, then
		// encrypts in the state it rejoined with, instead of failing
		// every send.
		if err = sl.heal.healDamaged(ctx, conv, err); err == nil {
			it, err = sl.sealIn(ctx, conv, it)
		}
	}
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
	sl.st.Peek(func(tx *store.Tx) error { gone = tx.Meta(goneName(conv)) != nil; return nil })
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
		if it, err = sl.encryptIn(tx, conv, self, g, cur, it, pt); err != nil {
			return err
		}
		return sl.storeSealed(tx, conv, g, it)
	})
	return it, err
}

// encryptIn encrypts the plaintext pt of it (cur as stored; a control
// item is sealed here) with g, conv's group loaded in tx, and returns it
// with the request; storeSealed writes them. encryptIn writes nothing.
func (sl *sealer) encryptIn(tx *store.Tx, conv string, self e2ee.Self, g e2ee.Group, cur, it store.OutboxItem, pt []byte) (store.OutboxItem, error) {
	if cur.Control != nil {
		ctl, err := sl.groups.sealControl(tx, conv, g, self, cur.Control)
		if err != nil {
			return it, err
		}
		if pt, err = encodeControlBody(ctl); err != nil {
			return it, err
		}
	}
	ct, err := g.Encrypt(pt)
	if err != nil {
		return it, fmt.Errorf("client: encrypt: %w", err)
	}
	req := &wire.Send{ConversationId: conv, MessageId: it.ID, Kind: wire.MessageKind_MESSAGE_KIND_APPLICATION, Epoch: g.Epoch(), Payload: ct}
	if it.Payload, err = proto.Marshal(req); err != nil {
		return it, err
	}
	it.Conversation, it.Epoch = conv, g.Epoch()
	if cur.Control == nil && cur.Body == nil {
		it.Recipients = convstate.PeersOf(g.Members(), convstate.UserOf(self.Address))
	}
	return it, nil
}

// storeSealed stores the sealed item it with g, the group state its
// encryption advanced, in one transaction.
func (sl *sealer) storeSealed(tx *store.Tx, conv string, g e2ee.Group, it store.OutboxItem) error {
	if err := sl.states.Save(tx, conv, g); err != nil {
		return err
	}
	return tx.UpdateOutbox(it)
}

// sealQueued encrypts a text or media item in tx, the transaction that
// queues it, when that needs nothing that Flush would first wait for or
// fetch: this device's session is connected and caught up (so the epoch
// and roster are current), the conversation's roster was checked within
// its window, it is not parked, out of step or left, every other user of
// it has a device, and no earlier item in its send queue waits to be
// encrypted (the one before it, if any, is sealed: the messages are
// encrypted in their order, also when several are queued while the first
// is in flight). The item is then stored sealed, with the advanced group
// state: queueing and encrypting cost one commit instead of two.
// Otherwise it stays as it is (sealed by Flush); an error is returned only
// for a failed write (tx must then be discarded).
//
// An item sealed behind another one that the hub then refuses as
// encrypted for a stale epoch is refused the same way when its turn
// comes, and encrypted again then (outbox.Sender.unseal), after the one
// before it: the order the hub accepts them in is the queue's.
func (sl *sealer) sealQueued(tx *store.Tx, it store.OutboxItem) (store.OutboxItem, error) {
	conv := it.Conversation
	if conv == "" || it.Control != nil || it.Body != nil || sl.live == nil || !sl.live() {
		return it, nil
	}
	if ok, err := tx.OutboxQueueSealed(it); err != nil || !ok {
		return it, nil // Flush seals it (and reports a damaged record)
	}
	if tx.Meta(goneName(conv)) != nil || isParked(tx, conv) || !sl.rosters.FreshIn(tx, conv) {
		return it, nil
	}
	if _, out, err := convstate.GetOutOfStep(tx, conv); err != nil || out {
		return it, nil
	}
	sl.warm.mu.Lock()
	warming := sl.warm.busy[conv] != nil
	sl.warm.mu.Unlock()
	if warming {
		return it, nil
	}
	self, err := sl.acct.Self()
	if err != nil {
		return it, nil
	}
	pt, err := encodeItemBody(it)
	if err != nil {
		return it, nil
	}
	meta, err := convstate.Get(tx, conv)
	if err != nil {
		return it, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), sealQueuedLimit)
	defer cancel()
	g, err := sl.states.Load(tx, conv, self, sl.dir.Members(ctx, tx))
	if err != nil {
		return it, nil
	}
	have := convstate.PeersOf(g.Members(), convstate.UserOf(self.Address))
	for _, p := range meta.Peers {
		if !slices.Contains(have, p) {
			sl.states.Cache.Release(g)
			return it, nil // Flush says why (checkReachable)
		}
	}
	sealed, err := sl.encryptIn(tx, conv, self, g, it, it, pt)
	if err != nil {
		return it, nil // Flush encrypts it, and reports what fails
	}
	if err := sl.storeSealed(tx, conv, g, sealed); err != nil {
		return it, err
	}
	return sealed, nil
}

// sealQueuedLimit bounds what sealQueued's group load may ask the
// directory (nothing, for an encryption).
const sealQueuedLimit = 5 * time.Second

// checkReachable refuses to encrypt for a conversation in which some other
// user has no device at all: nobody there could ever read the message.
func (sl *sealer) checkReachable(conv string, self e2ee.Self) error {
	return sl.st.Peek(func(tx *store.Tx) error { // (nothing put off by Store.Later is read)
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
