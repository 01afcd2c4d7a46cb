package homeserver

import (
	"errors"

	"hearth/federation"
	"hearth/federation/fedwire"
	"hearth/keys/identity"
	"hearth/storage"
)

// notifyFailed tells the device that sent the message of an expired
// DELIVER that it did not reach dest: a notice in its mailbox when it is
// local, else a DELIVER notice (failed_server set) queued to its server.
// A notice that itself expires is only logged, so this never loops.
func (f *fed) notifyFailed(tx *storage.Tx, dest string, env *fedwire.Envelope, a *applied) error {
	if env.FailedServer != "" {
		return nil
	}
	da, err := identity.ParseDevice(env.Sender)
	if err != nil {
		return nil // not a device: nobody to tell
	}
	now := f.s.nowMs()
	if da.User.Domain == f.s.cfg.Domain {
		return f.appendNotice(tx, env, dest, now, a)
	}
	out := &fedwire.Envelope{Id: "failed-" + env.Id, Kind: fedwire.EnvelopeKind_ENVELOPE_KIND_DELIVER,
		ConversationId: env.ConversationId, Sender: env.Sender, MessageId: env.MessageId,
		ConversationSeq: env.ConversationSeq, Recipients: []string{env.Sender}, FailedServer: dest, ServerTimeMs: now}
	if err := f.enqueue(tx, da.User.Domain, out); err != nil {
		return err
	}
	a.dest(da.User.Domain)
	return nil
}

// applyFailedNotice applies a hub's DELIVER notice: the sending device's
// message could not reach env.FailedServer. It is outside the
// conversation order; its only recipient must be the message's sender.
func (f *fed) applyFailedNotice(tx *storage.Tx, env *fedwire.Envelope, a *applied) error {
	const op = "homeserver.federation.DeliveryFailed"
	if len(env.Recipients) != 1 || env.Recipients[0] != env.Sender || federation.ValidDomain(env.FailedServer) != nil {
		return &federation.Error{Op: op, Code: fedwire.Code_CODE_BAD_REQUEST, Msg: "a delivery-failed notice goes to the message's sender only and names a valid server"}
	}
	return f.appendNotice(tx, env, env.FailedServer, f.s.nowMs(), a)
}

// appendNotice puts the notice that env's message did not reach failed
// into its sending device's mailbox. A device that is gone is logged and
// skipped (there is nobody left to tell).
func (f *fed) appendNotice(tx *storage.Tx, env *fedwire.Envelope, failed string, now int64, a *applied) error {
	convID, addr, convSeq := env.ConversationId, env.Sender, env.ConversationSeq
	da, err := identity.ParseDevice(addr)
	if err != nil {
		return nil
	}
	d, err := tx.Device(da.Device)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && (d.UserName != da.User.Local || d.Status != storage.DeviceActive)) {
		f.s.log.Warn("federation: delivery-failed notice for an unknown or inactive device dropped", "conversation", convID, "device", addr)
		return nil
	} else if err != nil {
		return err
	}
	h, err := tx.AppendMailboxNotice(d.ID, convID, convSeq, env.MessageId, addr, failed, now)
	if errors.Is(err, storage.ErrNotFound) {
		f.s.log.Warn("federation: delivery-failed notice for a device without a mailbox dropped", "conversation", convID,
			"device", addr, "conversation_seq", convSeq)
		return nil
	} else if err != nil {
		return err
	}
	f.s.log.Info("federation: sender told of an undeliverable message", "conversation", convID, "device", addr,
		"conversation_seq", convSeq, "server", failed)
	a.heads = append(a.heads, h)
	return nil
}
