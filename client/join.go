package client

import (
	"context"
	"errors"
	"fmt"

	"hearth/client/convstate"
	"hearth/client/directory"
	"hearth/client/e2ee"
	"hearth/client/store"
	"hearth/homeserver/wire"
)

// join processes a Welcome: it opens the group with one of this device's
// KeyPackages, checks every member against its user's device list and
// records the conversation, all in the delivery's store transaction.
func (r *receiver) join(ctx context.Context, tx *store.Tx, self e2ee.Self, d *wire.Delivery) error {
	conv := d.GetConversationId()
	v := r.dir.Members(ctx, tx)
	// The hub accepted the Welcome (and verified its tree against the
	// lists it held) at server_time_ms: a member missing from a list signed
	// after that may have been revoked since, as for a commit (decision
	// 0006). A Welcome read late, after its user revoked one of the
	// members, opens; the reconcile removes that member before this device
	// sends, and its messages are shown only if sent before the list
	// dropped it (directory.ListedAt).
	v.CommitAt = d.GetServerTimeMs()
	g, used, err := r.openWelcome(ctx, tx, self, d, v)
	if v.Transient != nil {
		return &listWait{conv: conv, err: fmt.Errorf("client: checking a member: %w", v.Transient)}
	}
	if err != nil {
		return r.unopened(tx, self, d, v, err)
	}
	if len(v.Revoked) > 0 {
		r.log.Info("welcome has devices revoked since; they are removed before this device sends",
			"conversation", conv, "devices", v.Revoked)
		r.rosters.Unsync(conv)
	}
	// A device removed and added again gets a new Welcome; one for an
	// epoch not after the state it holds is refused.
	if old, err := r.states.Load(tx, conv, self, v); err == nil && old.Epoch() >= g.Epoch() {
		return &badMessage{err: fmt.Errorf("welcome to %s for epoch %d; this device is at epoch %d", conv, g.Epoch(), old.Epoch())}
	}
	if err := r.states.Save(tx, conv, g); err != nil {
		return err
	}
	if tx.Meta(metaLastResort+string(used)) == nil { // a last-resort package may be used again
		if err := tx.DeleteKeyPackage(used); err != nil {
			return err
		}
	}
	if err := tx.PutMeta(convstate.RegisteredName(conv), []byte{1}); err != nil { // the hub has it: we were added there
		return err
	}
	// Added (again): in step, and no longer gone if it was.
	if err := convstate.ClearOutOfStep(tx, conv); err != nil {
		return err
	}
	if err := tx.DeleteMeta(goneName(conv)); err != nil {
		return err
	}
	cv := convstate.Conversation{ID: conv, Peers: convstate.PeersOf(g.Members(), convstate.UserOf(self.Address)), Creator: convstate.UserOf(d.GetSender())}
	if g.AdminKey() != nil {
		cv.Group = true
		if _, known, err := getGroupMeta(tx, conv); err != nil {
			return err
		} else if !known {
			if err := putGroupMeta(tx, conv, groupMeta{}); err != nil {
				return err
			}
		}
	}
	return convstate.Remember(tx, cv)
}

// openWelcome joins from the Welcome, with the tree of the delivery's
// GroupInfo when there is one. That GroupInfo must be of this
// conversation and of the epoch the Welcome starts; its members' device
// lists are fetched in one batch first, so that checking a big group's
// members does not cost a round trip per user.
func (r *receiver) openWelcome(ctx context.Context, tx *store.Tx, self e2ee.Self, d *wire.Delivery, v *directory.MemberValidator) (e2ee.Group, []byte, error) {
	if len(d.GetGroupInfo()) == 0 {
		return r.mls.Join(d.GetPayload(), nil, self, tx.KeyPackage, v)
	}
	group, epoch, members, err := r.mls.ReadGroupInfo(d.GetGroupInfo())
	if err != nil {
		return nil, nil, fmt.Errorf("client: welcome's group info: %w", err)
	}
	if group != d.GetConversationId() || epoch != d.GetEpoch() {
		return nil, nil, fmt.Errorf("client: welcome to %s epoch %d carries the group info of %s epoch %d",
			d.GetConversationId(), d.GetEpoch(), group, epoch)
	}
	if users := r.dir.Unknown(tx, members); len(users) > 0 {
		if _, err := r.dir.FetchMany(ctx, tx, users); err != nil {
			if !wire.Is(err, wire.Code_CODE_BAD_SIGNATURE) {
				v.Transient = err // retry the delivery later
			}
			return nil, nil, err
		}
	}
	return r.mls.Join(d.GetPayload(), d.GetGroupInfo(), self, tx.KeyPackage, v)
}

// unopened is the error for a Welcome that could not be opened (damaged
// on its way, or a member that sent one this device cannot read). The
// hub has this device in the group from then on, so unless this device
// already holds a state of that epoch or later, the conversation is
// marked out of step at once (noteBad): the device rejoins it as soon as
// it is caught up, instead of losing every message until one fails for
// want of a state.
func (r *receiver) unopened(tx *store.Tx, self e2ee.Self, d *wire.Delivery, v *directory.MemberValidator, err error) error {
	bad := &badMessage{err: err, why: "its Welcome could not be opened"}
	old, lerr := r.states.Load(tx, d.GetConversationId(), self, v)
	switch {
	case errors.Is(lerr, store.ErrNotFound), errors.Is(lerr, convstate.ErrDamagedState):
		bad.outOfStep = true
	case lerr != nil:
		return lerr
	default:
		bad.outOfStep = old.Epoch() < d.GetEpoch()
		r.states.Cache.Release(old)
	}
	return bad
}
