package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"hearth/client/account"
	"hearth/client/convstate"
	"hearth/client/directory"
	"hearth/client/e2ee"
	"hearth/client/roster"
	"hearth/client/session"
	"hearth/client/store"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

// healer brings conversations this device cannot follow back in step
// (decision 0006). The receiver marks a conversation out of step in the
// store; the healer rejoins it by external commit from the hub's current
// GroupInfo, replacing this device's old leaf when the hub still lists
// it (a resync). Queued outbox items stay queued and are sealed under the
// new epoch. A hub that no longer lists this user ends the conversation
// for this device (marked gone, the user told); other refusals are
// counted and give up after convstate.MaxHealTries.
type healer struct {
	st             *store.Store
	states         convstate.States
	mls            e2ee.Engine
	dir            *directory.Directory
	rosters        *roster.Roster
	acct           *account.Manager
	callIdempotent func(ctx context.Context, op string, f *wire.ClientFrame) (*wire.ServerFrame, error)
	newID          func() (string, error)
	now            func() time.Time
	log            *slog.Logger
}

// staleRetries bounds the rejoins of one heal that the hub refuses as
// stale (another commit came first): each is redone from its new GroupInfo.
const staleRetries = 3

// ensure heals conv if it is out of step, before a message is sealed for
// it. A conversation this device is no longer in fails for good, as does
// one whose heal gave up.
func (h *healer) ensure(ctx context.Context, conv string) error {
	var gone, out bool
	err := h.st.Peek(func(tx *store.Tx) (err error) { // metadata only (keyPackages.ensure)
		gone = tx.Meta(goneName(conv)) != nil
		_, out, err = convstate.GetOutOfStep(tx, conv)
		return err
	})
	switch {
	case err != nil:
		return err
	case gone:
		return notMemberAnymore(conv)
	case !out:
		return nil
	}
	return h.heal(ctx, conv)
}

// healDamaged heals conv when err says this device's own stored state of
// it does not load (convstate.ErrDamagedState): it is marked out of step
// and rejoined from the conversation's GroupInfo, which needs nothing of
// the old state. Any other err is returned as it is.
func (h *healer) healDamaged(ctx context.Context, conv string, err error) error {
	if !errors.Is(err, convstate.ErrDamagedState) {
		return err
	}
	h.log.Warn("the stored state of a conversation does not load; rejoining it", "conversation", conv)
	if merr := h.st.Update(func(tx *store.Tx) error {
		return convstate.MarkOutOfStep(tx, conv, "this device's state of the conversation is damaged")
	}); merr != nil {
		return errors.Join(err, merr)
	}
	return h.ensure(ctx, conv)
}

// loads reports whether this device's stored state of conv, if it holds
// one, loads (nil), for healDamaged before a group operation.
func (h *healer) loads(ctx context.Context, conv string) error {
	self, err := h.acct.Self()
	if err != nil {
		return err
	}
	err = h.st.View(func(tx *store.Tx) error {
		return h.states.View(tx, conv, self, h.dir.Members(ctx, tx), func(e2ee.Group) error { return nil })
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil // not held here: the operation reports it
	}
	return err
}

// prepare brings conv in step before a group operation (add, remove,
// roles, leave), as the sealer does before a send: a conversation out of
// step is healed, and one this device holds no state of but whose hub
// lists its user (a new device not added yet) is joined. A conversation
// the hub does not list this user in is left to the operation, which
// reports it as unknown.
func (h *healer) prepare(ctx context.Context, conv string) error {
	var held bool
	if err := h.st.View(func(tx *store.Tx) error {
		_, err := convstate.Get(tx, conv)
		held = err == nil || tx.Meta(goneName(conv)) != nil
		return nil
	}); err != nil {
		return err
	}
	if held {
		return h.ensure(ctx, conv)
	}
	_, err := h.joinNew(ctx, conv)
	return err
}

// joinNew joins conv by external commit when the hub has it and lists
// this user but this device holds no state of it: another device of the
// user is in it and has not added this one yet (decision 0006). false
// means the hub has no such conversation for this user.
func (h *healer) joinNew(ctx context.Context, conv string) (bool, error) {
	r, err := h.callIdempotent(ctx, "client.GetConversation", &wire.ClientFrame{Body: &wire.ClientFrame_GetConversation{GetConversation: &wire.GetConversation{ConversationId: conv}}})
	if err != nil {
		if session.Retryable(err) {
			return false, err
		}
		return false, nil // not a conversation (or not one of this user's)
	}
	if r.GetConversation().GetConversationId() != conv {
		return false, nil
	}
	if err := h.st.Update(func(tx *store.Tx) error {
		return convstate.MarkOutOfStep(tx, conv, "this device has not been added to the conversation yet")
	}); err != nil {
		return false, err
	}
	return true, h.heal(ctx, conv)
}

// healAgain is how long a run waits before trying again to heal a
// conversation whose heal failed or that fell out of step again.
const healAgain = time.Minute

// catchUp heals the conversations marked out of step (each at most once
// per healAgain in tried, the run's record) and reports the undecryptable
// deliveries of those in step. A failure that may pass (no connection) is
// returned after trying the others; refusals are recorded, not returned.
func (h *healer) catchUp(ctx context.Context, tried map[string]time.Time) error {
	var convs, counted []string
	if err := h.st.Peek(func(tx *store.Tx) error { // metadata only (keyPackages.ensure)
		convs, counted = toHealIn(tx)
		return nil
	}); err != nil {
		return err
	}
	return h.catchUpOf(ctx, tried, convs, counted)
}

// toHealIn reads, in tx, the conversations out of step and those with
// undecryptable deliveries to report (catchUp).
func toHealIn(tx *store.Tx) (convs, counted []string) {
	return convstate.OutOfStepConversations(tx), convstate.UndecryptableConversations(tx)
}

// catchUpOf is catchUp for the conversations toHealIn read.
func (h *healer) catchUpOf(ctx context.Context, tried map[string]time.Time, convs, counted []string) error {
	if len(convs)+len(counted) == 0 {
		return nil
	}
	var first error
	for _, conv := range convs {
		if at, ok := tried[conv]; ok && h.now().Sub(at) < healAgain {
			continue
		}
		tried[conv] = h.now()
		if err := h.heal(ctx, conv); err != nil {
			h.log.Warn("healing a conversation failed", "conversation", conv, "err", err)
			if first == nil && session.Retryable(err) {
				first = err
			}
		}
	}
	if len(counted) == 0 {
		return first
	}
	return errors.Join(first, h.report())
}

// report turns the undecryptable counts of conversations that are in
// step (or whose heal gave up) into one event each for `recv`; those
// still out of step are reported once healed, with what healing skipped.
func (h *healer) report() error {
	var due []string
	err := h.st.View(func(tx *store.Tx) error {
		for _, conv := range convstate.UndecryptableConversations(tx) {
			o, out, err := convstate.GetOutOfStep(tx, conv)
			if err != nil {
				return err
			}
			if !out || o.Tries >= convstate.MaxHealTries {
				due = append(due, conv)
			}
		}
		return nil
	})
	if err != nil || len(due) == 0 {
		return err
	}
	self, err := h.acct.Self()
	if err != nil {
		return err
	}
	return h.st.Update(func(tx *store.Tx) error {
		for _, conv := range due {
			if err := h.reportUndecryptable(tx, conv, self); err != nil {
				return err
			}
		}
		return nil
	})
}

func (h *healer) reportUndecryptable(tx *store.Tx, conv string, self e2ee.Self) error {
	u, err := convstate.TakeUndecryptable(tx, conv)
	if err != nil || u.Count == 0 {
		return err
	}
	return h.addEvent(tx, conv, self, "undecryptable", func(m *store.Message) {
		m.Count, m.Reason = u.Count, u.Reason
		m.Text = fmt.Sprintf("%d message(s) could not be decrypted: %s", u.Count, u.Reason)
	})
}

// addEvent puts an event about this device's membership of conv into
// the inbox: it has an id of its own and no place in the conversation.
func (h *healer) addEvent(tx *store.Tx, conv string, self e2ee.Self, name string, fill func(*store.Message)) error {
	id, err := h.newID()
	if err != nil {
		return err
	}
	m := store.Message{ID: id, Conversation: conv, From: convstate.UserOf(self.Address), SentAt: h.now().UTC(),
		Event: name, User: convstate.UserOf(self.Address)}
	fill(&m)
	return tx.AddInbox(m)
}

// heal rejoins conv if it is out of step.
func (h *healer) heal(ctx context.Context, conv string) error {
	const op = "client.Heal"
	var o convstate.OutOfStep
	var out bool
	if err := h.st.View(func(tx *store.Tx) (err error) { o, out, err = convstate.GetOutOfStep(tx, conv); return }); err != nil || !out {
		return err
	}
	if o.Tries >= convstate.MaxHealTries {
		return wire.Errorf(op, wire.Code_CODE_FORBIDDEN, "conversation %s is out of step (%s) and rejoining it failed %d times: %s",
			conv, o.Cause, o.Tries, o.LastError)
	}
	self, err := h.acct.Self()
	if err != nil {
		return err
	}
	for try := 0; ; try++ {
		r, err := h.callIdempotent(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_GetConversation{GetConversation: &wire.GetConversation{ConversationId: conv}}})
		switch {
		case wire.Is(err, wire.Code_CODE_NOT_FOUND):
			return h.removed(conv, self)
		case err != nil && session.Retryable(err):
			return err
		case err != nil:
			return h.failed(conv, o, err)
		}
		info := r.GetConversation()
		if !slices.ContainsFunc(info.GetMembers(), func(m string) bool { return convstate.UserOf(m) == convstate.UserOf(self.Address) }) {
			return h.removed(conv, self)
		}
		err = h.rejoin(ctx, conv, info, self)
		switch {
		case err == nil:
			h.log.Info("rejoined a conversation this device had fallen out of step with", "conversation", conv, "cause", o.Cause)
			return nil
		case wire.Is(err, wire.Code_CODE_NOT_MEMBER):
			return h.removed(conv, self)
		case wire.Is(err, wire.Code_CODE_STALE_EPOCH) && try < staleRetries:
			continue // another commit came first: rejoin from the newer GroupInfo
		case session.Retryable(err) && !wire.Is(err, wire.Code_CODE_STALE_EPOCH):
			return err
		case errors.Is(err, identity.ErrUnknownDevice):
			// A leaf of the hub's tree is a device no longer on its
			// user's list: revoked, and not yet removed by a member's
			// roster check (a rejoin checks every leaf strictly). Not this
			// device's fault, and it passes once any member sends: not
			// counted towards giving up; tried again later.
			h.log.Info("rejoin waits for a revoked device to leave the conversation", "conversation", conv, "err", err)
			return wire.Errorf(op, wire.Code_CODE_UNAVAILABLE, "rejoining conversation %s waits for a member to remove a revoked device: %v", conv, err)
		default:
			return h.failed(conv, o, err)
		}
	}
}

// rejoin joins conv by external commit from the hub's GroupInfo in info
// and sends the commit. The conversation's record is kept; its old group
// state is replaced.
func (h *healer) rejoin(ctx context.Context, conv string, info *wire.ConversationInfo, self e2ee.Self) error {
	if len(info.GetGroupInfo()) == 0 {
		return wire.Errorf("client.Heal", wire.Code_CODE_NOT_FOUND, "the hub has no GroupInfo for %s", conv)
	}
	resync := slices.Contains(info.GetMembers(), self.Address)
	var req *wire.Send
	err := h.st.Update(func(tx *store.Tx) error {
		cv, err := convstate.Get(tx, conv)
		if err != nil {
			cv = convstate.Conversation{ID: conv, Creator: info.GetCreator(),
				Group: info.GetKind() != wire.ConversationKind_CONVERSATION_KIND_DIRECT}
		}
		g, commit, err := h.mls.JoinExternal(info.GetGroupInfo(), self, h.dir.Members(ctx, tx))
		if err != nil {
			return err
		}
		if resync {
			// The hub lists this device already: the commit replaces its
			// old leaf and changes no one's membership.
			commit.Added = nil
		}
		if err := h.states.Save(tx, conv, g); err != nil {
			return err
		}
		if req, err = h.rosters.PendCommit(tx, conv, g.Epoch()-1, commit); err != nil { // the commit leaves the GroupInfo's epoch
			return err
		}
		for _, name := range []string{convstate.RegisteredName(conv), convstate.ExternalName(conv)} {
			if err := tx.PutMeta(name, []byte{1}); err != nil {
				return err
			}
		}
		cv.Peers = convstate.PeersOf(g.Members(), convstate.UserOf(self.Address))
		if cv.Group {
			if _, known, err := getGroupMeta(tx, conv); err != nil {
				return err
			} else if !known {
				if err := putGroupMeta(tx, conv, groupMeta{}); err != nil {
					return err
				}
			}
		}
		return convstate.Remember(tx, cv)
	})
	if err != nil {
		return err
	}
	err = h.rosters.FinishCommit(ctx, conv, req)
	if err != nil {
		return err
	}
	h.rosters.Unsync(conv) // check the roster against the lists before the next send
	return h.st.Update(func(tx *store.Tx) error {
		if err := convstate.ClearOutOfStep(tx, conv); err != nil {
			return err
		}
		return h.reportUndecryptable(tx, conv, self)
	})
}

// removed ends conv for this device: the hub no longer lists its user.
func (h *healer) removed(conv string, self e2ee.Self) error {
	h.log.Info("this device's user is no longer in a conversation it had fallen out of step with", "conversation", conv)
	err := h.st.Update(func(tx *store.Tx) error {
		if err := forgetConversation(tx, conv); err != nil {
			return err
		}
		if err := convstate.ClearOutOfStep(tx, conv); err != nil {
			return err
		}
		if err := h.reportUndecryptable(tx, conv, self); err != nil {
			return err
		}
		return h.addEvent(tx, conv, self, "removed", func(m *store.Message) {
			m.Text = "you are no longer a member of " + conv
		})
	})
	if err != nil {
		return err
	}
	return notMemberAnymore(conv)
}

// failed counts a rejoin that failed for a reason that will not pass by
// waiting, and returns it.
func (h *healer) failed(conv string, o convstate.OutOfStep, cause error) error {
	o.Tries++
	o.LastError = cause.Error()
	err := h.st.Update(func(tx *store.Tx) error {
		if err := convstate.PutOutOfStep(tx, conv, o); err != nil || o.Tries < convstate.MaxHealTries {
			return err
		}
		// Giving up: the user is told, once.
		self, err := h.acct.Self()
		if err != nil {
			return err
		}
		return h.addEvent(tx, conv, self, "rejoin_failed", func(m *store.Message) {
			m.Reason = o.LastError
			m.Text = fmt.Sprintf("this device cannot follow %s any more and rejoining failed %d times: %s", conv, o.Tries, o.LastError)
		})
	})
	if err != nil {
		return err
	}
	return wire.Errorf("client.Heal", wire.Code_CODE_FORBIDDEN, "rejoining conversation %s (out of step: %s) failed: %v", conv, o.Cause, cause)
}
