package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"hearth/client/convstate"
	"hearth/client/e2ee"
	"hearth/client/store"
	"hearth/homeserver/wire"
	"hearth/keys/groupauth"
	"hearth/keys/identity"
)

func notAdmin(conv string) error {
	return wire.Errorf("client.Group", wire.Code_CODE_FORBIDDEN, "not an admin of group %s", conv)
}

// ErrCommitRefused is reported (as a commit_refused event) when a member's
// commit breaks the group's admin rule; this device stays at its epoch.
var ErrCommitRefused = errors.New("client: commit refused: roster change without a valid admin signature")

// recheckCommitFor is how long after the hub accepted a commit a device
// whose admin check failed only because a device list could not be
// fetched processes that commit again later instead of refusing it.
const recheckCommitFor = 2 * time.Minute

// checkCommit applies decision 0003's rule to a processed commit. A
// commit refused only because the list of a removed device's user could
// not be fetched (its server down a moment) is, while recent, a local
// failure: the delivery is parked and processed again later (parked.go),
// not refused (refusing puts this device out of step and loses the
// epoch's messages).
func (r *receiver) checkCommit(ctx context.Context, tx *store.Tx, conv string, before []string, rcv e2ee.Received, at time.Time) error {
	if rcv.AdminKeyBefore == nil {
		return nil // no admin key: a 1:1 conversation
	}
	var unfetched error
	revoked := func(dev string) bool {
		da, err := identity.ParseDevice(dev)
		if err != nil {
			return false
		}
		l, err := r.dir.Fetch(ctx, tx, da.User)
		if err != nil {
			if !wire.Is(err, wire.Code_CODE_BAD_SIGNATURE) && !wire.Is(err, wire.Code_CODE_NOT_FOUND) {
				unfetched = err
			}
			return false
		}
		for _, d := range l.Devices {
			if d.DeviceID == da.Device {
				return false
			}
		}
		return true
	}
	ch := groupauth.Change{Added: rcv.Added, Removed: rcv.Removed, ExtChanged: rcv.ExtChanged}
	if rcv.ExtChanged {
		ch.NewAdminKey = rcv.AdminKeyAfter
	}
	ros := groupauth.Roster{Members: before, Committer: rcv.Sender, Revoked: revoked}
	if err := groupauth.Check(rcv.AdminKeyBefore, conv, rcv.EpochBefore, ros, ch, rcv.AuthenticatedData); err != nil {
		if unfetched != nil && r.now().Sub(at) < recheckCommitFor {
			return &listWait{conv: conv, err: fmt.Errorf("client: checking a commit's removals (processed again later): %w", unfetched)}
		}
		return fmt.Errorf("%w: %w", ErrCommitRefused, err)
	}
	return nil
}

// applyCommit checks a processed commit, saves the new epoch and reports
// the membership changes as events. A refused commit leaves the state as
// it was and is reported.
func (r *receiver) applyCommit(ctx context.Context, tx *store.Tx, conv string, g e2ee.Group, before []string, rcv e2ee.Received, at store.Message) error {
	if err := r.checkCommit(ctx, tx, conv, before, rcv, at.SentAt); err != nil {
		if !errors.Is(err, ErrCommitRefused) {
			r.log.Info("a commit cannot be checked yet; it is processed again later", "conversation", conv, "err", err)
			return err
		}
		r.log.Warn("refusing a commit", "conversation", conv, "sender", rcv.Sender, "err", err)
		ev := at
		ev.Event, ev.User, ev.Text = "commit_refused", convstate.UserOf(rcv.Sender), err.Error()
		return tx.AddInbox(ev)
	}
	self, err := r.self()
	if err != nil {
		return err
	}
	if slices.Contains(rcv.Removed, self.Address) {
		ev := at
		ev.Event, ev.User = "member_removed", convstate.UserOf(self.Address)
		if err := forgetConversation(tx, conv); err != nil {
			return err
		}
		if err := convstate.ClearOutOfStep(tx, conv); err != nil {
			return err
		}
		if err := tx.AddInbox(ev); err != nil {
			return err
		}
		// This device's own view of it (decision 0006): it was removed.
		ev.Event, ev.Text = "removed", "you are no longer a member of "+conv
		return tx.AddInbox(ev)
	}
	if err := r.states.Save(tx, conv, g); err != nil {
		return err
	}
	meta, isGroup, err := getGroupMeta(tx, conv)
	if err != nil || !isGroup {
		return err
	}
	after := g.Members()
	beforeUsers, afterUsers := convstate.UsersOf(before), convstate.UsersOf(after)
	var evs []store.Message
	for _, u := range afterUsers {
		if _, found := slices.BinarySearch(beforeUsers, u); !found {
			evs = append(evs, store.Message{Event: "member_added", User: u})
		}
	}
	for _, u := range beforeUsers {
		if _, found := slices.BinarySearch(afterUsers, u); !found {
			evs = append(evs, store.Message{Event: "member_removed", User: u})
			meta.Leaving = slices.DeleteFunc(meta.Leaving, func(x string) bool { return x == u })
			meta.Admins = slices.DeleteFunc(meta.Admins, func(x string) bool { return x == u })
		}
	}
	if rcv.ExtChanged && meta.AdminSeed != nil {
		meta.AdminSeed = nil // rotated: the new key comes sealed in a control message
	}
	if err := putGroupMeta(tx, conv, meta); err != nil {
		return err
	}
	added := slices.DeleteFunc(slices.Clone(after), func(d string) bool { return slices.Contains(before, d) })
	// A device that rejoined (an external commit that removed its old
	// leaf: a Welcome that did not open, a damaged or lost state) holds
	// none of the group's description: an admin sends it again, with the
	// admin key sealed to its new leaf if its user is an admin.
	rejoined := slices.ContainsFunc(rcv.Added, func(d string) bool { return d != self.Address && slices.Contains(before, d) })
	if !rcv.ExtChanged && (adminSyncDue(meta, added, self.Address) || (rejoined && meta.AdminSeed != nil)) {
		id, err := r.newID()
		if err != nil {
			return err
		}
		if err := queueAdminSync(tx, conv, id, r.now()); err != nil {
			return err
		}
	}
	if err := r.rosters.UpdatePeers(tx, conv, after, self); err != nil {
		return err
	}
	return addEvents(tx, at, evs)
}

// addEvents puts group events into the inbox (not into history, which
// holds messages only), stamped with the delivery's id, sender and order.
func addEvents(tx *store.Tx, at store.Message, evs []store.Message) error {
	if isSettingsGroup(tx, at.Conversation) {
		return nil // this user's settings group: nothing to show
	}
	for _, e := range evs {
		m := at
		m.Event, m.User, m.Text = e.Event, e.User, e.Text
		if err := tx.AddInbox(m); err != nil {
			return err
		}
	}
	return nil
}
