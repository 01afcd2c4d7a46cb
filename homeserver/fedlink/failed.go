package fedlink

import (
	"hearth/federation"
	"hearth/federation/fedwire"
	"hearth/homeserver/hub"
	"hearth/keys/identity"
	"hearth/storage"
)

// notifyFailed tells the device that sent the message of an expired
// DELIVER that it did not reach dest: a notice in its mailbox when it is
// local, else a DELIVER notice (failed_server set) queued to its server.
// A notice that itself expires is only logged, so this never loops.
func (f *Link) notifyFailed(tx *storage.Tx, dest string, env *fedwire.Envelope, a *applied) error {
	if env.FailedServer != "" {
		return nil
	}
	da, err := identity.ParseDevice(env.Sender)
	if err != nil {
		return nil // not a device: nobody to tell
	}
	now := f.nowMs()
	if da.User.Domain == f.domain {
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
func (f *Link) applyFailedNotice(tx *storage.Tx, env *fedwire.Envelope, a *applied) error {
	const op = "homeserver.federation.DeliveryFailed"
	if len(env.Recipients) != 1 || env.Recipients[0] != env.Sender || federation.ValidDomain(env.FailedServer) != nil {
		return &federation.Error{Op: op, Kind: fedwire.Code_CODE_BAD_REQUEST, Msg: "a delivery-failed notice goes to the message's sender only and names a valid server"}
	}
	return f.appendNotice(tx, env, env.FailedServer, f.nowMs(), a)
}

// appendNotice puts the notice that env's message did not reach failed
// into its sending device's mailbox (hub.AppendNotice).
func (f *Link) appendNotice(tx *storage.Tx, env *fedwire.Envelope, failed string, now int64, a *applied) error {
	h, ok, err := f.hub.AppendNotice(tx, &hub.Failed{Conv: env.ConversationId, Sender: env.Sender, MessageID: env.MessageId,
		Seq: env.ConversationSeq, Server: failed}, now)
	if ok {
		a.heads = append(a.heads, h)
	}
	return err
}
