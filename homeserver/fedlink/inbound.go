package fedlink

import (
	"bytes"
	"context"
	"errors"

	"google.golang.org/protobuf/proto"

	"hearth/federation"
	"hearth/federation/fedwire"
	"hearth/homeserver/hub"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/storage"
)

// applied is what applying envelopes produced, acted on after the commit.
type applied struct {
	heads    []storage.Head
	wake     map[string]bool // destinations with new queued envelopes
	resolved []string        // SUBMIT envelope ids that got their verdict
	resync   []string        // remote users whose device list has a gap
}

func (a *applied) dest(d string) {
	if a.wake == nil {
		a.wake = map[string]bool{}
	}
	a.wake[d] = true
}

// ApplyTransaction deduplicates a verified transaction on (origin,
// txn_id), then applies its envelopes in order, each deduplicated on
// (origin, envelope id). After the first envelope refused for now, the
// rest are answered CODE_UNAVAILABLE unapplied, so the sender's order holds.
func (f *Link) ApplyTransaction(ctx context.Context, txn *fedwire.Transaction, hash []byte) (*fedwire.TransactionResult, error) {
	const op = "homeserver.federation.Transaction"
	f.out.Contact(txn.Origin)
	var oldHash, oldRes []byte
	err := f.db.Read(ctx, func(tx *storage.Tx) (err error) {
		oldHash, oldRes, err = tx.InboundTxn(txn.Origin, txn.TxnId)
		return err
	})
	switch {
	case err == nil && bytes.Equal(oldHash, hash):
		res := &fedwire.TransactionResult{}
		if err := proto.Unmarshal(oldRes, res); err != nil {
			return nil, &federation.Error{Op: op, Kind: fedwire.Code_CODE_INTERNAL, Msg: "stored result", Err: err}
		}
		return res, nil
	case err == nil:
		return nil, &federation.Error{Op: op, Kind: fedwire.Code_CODE_REPLAY, Msg: "transaction " + txn.TxnId + " was seen with different content"}
	case !errors.Is(err, storage.ErrNotFound):
		return nil, &federation.Error{Op: op, Kind: fedwire.Code_CODE_INTERNAL, Msg: "dedup", Err: err}
	}
	res := &fedwire.TransactionResult{Code: fedwire.Code_CODE_OK, Results: make([]*fedwire.EnvelopeResult, len(txn.Envelopes))}
	a := &applied{}
	stopped := false // set inside the writer, which runs the functions in order
	waits := make([]func() error, len(txn.Envelopes))
	for i, env := range txn.Envelopes {
		r := &fedwire.EnvelopeResult{Id: env.GetId()}
		res.Results[i] = r
		waits[i] = f.db.Submit(ctx, func(tx *storage.Tx) error {
			if stopped {
				r.Code, r.Message = fedwire.Code_CODE_UNAVAILABLE, "an earlier envelope must be applied first"
				return nil
			}
			err := f.applyEnvelope(tx, txn.Origin, env, a)
			r.Code = fedKindOf(err)
			if err != nil {
				r.Message = err.Error()
			}
			if federation.Retryable(r.Code) {
				stopped = true
			}
			return err
		})
	}
	for i, w := range waits {
		if err := w(); err != nil && res.Results[i].Code == fedwire.Code_CODE_OK {
			res.Results[i].Code, res.Results[i].Message = fedwire.Code_CODE_INTERNAL, "not committed"
		}
		if c := res.Results[i].Code; c != fedwire.Code_CODE_OK {
			f.log.Info("federation: envelope refused", "origin", txn.Origin, "envelope", res.Results[i].Id, "code", c.String())
		}
	}
	f.afterCommit(a)
	b, err := proto.Marshal(res)
	if err == nil {
		err = f.db.Write(ctx, func(tx *storage.Tx) error {
			return tx.PutInboundTxn(txn.Origin, txn.TxnId, hash, b, f.nowMs())
		})
	}
	if err != nil {
		f.log.Error("federation: record transaction", "origin", txn.Origin, "err", err)
	}
	return res, nil
}

// afterCommit notifies sessions, sender loops and waiting Sends.
func (f *Link) afterCommit(a *applied) {
	f.notify(a.heads)
	for d := range a.wake {
		f.out.Wake(d)
	}
	f.mu.Lock()
	for _, id := range a.resolved {
		if ch, ok := f.waiters[id]; ok {
			close(ch)
			delete(f.waiters, id)
		}
	}
	f.mu.Unlock()
	for _, u := range a.resync {
		go f.Queries.resyncList(u)
	}
}

// applyEnvelope applies one envelope inside the writer's transaction.
func (f *Link) applyEnvelope(tx *storage.Tx, origin string, env *fedwire.Envelope, a *applied) error {
	if err := federation.CheckEnvelope(origin, f.domain, env); err != nil {
		return err
	}
	seen, err := tx.SeenEnvelope(origin, env.Id)
	if err != nil || seen {
		return err
	}
	switch env.Kind {
	case fedwire.EnvelopeKind_ENVELOPE_KIND_SUBMIT:
		err = f.applySubmit(tx, origin, env, a)
	case fedwire.EnvelopeKind_ENVELOPE_KIND_DELIVER:
		if err := f.checkLocalSender(tx, origin, env); err != nil {
			return err
		}
		if env.FailedServer != "" {
			err = f.applyFailedNotice(tx, env, a)
		} else {
			err = f.applyDeliver(tx, env, a)
		}
	case fedwire.EnvelopeKind_ENVELOPE_KIND_SUBMIT_RESULT:
		err = f.applyResult(tx, env, a)
	case fedwire.EnvelopeKind_ENVELOPE_KIND_DEVICE_LIST:
		err = f.applyDeviceList(tx, env, a)
	}
	if err != nil {
		return err
	}
	return tx.MarkEnvelope(origin, env.Id, f.nowMs())
}

// checkLocalSender refuses a DELIVER (message or delivery-failed notice)
// that names one of this server's own devices as its sender although this
// server never submitted that message to the hub: a hub speaks for the
// members of its conversations, but this server's users speak only
// through this server (a SUBMIT it sent, remembered as a pending
// submission or, once accepted, as the send record). Without it a hub
// could put words in a local user's mouth, or create a copy of a
// conversation with a local user as its creator.
func (f *Link) checkLocalSender(tx *storage.Tx, origin string, env *fedwire.Envelope) error {
	const op = "homeserver.federation.Deliver"
	if deviceDomain(env.Sender) != f.domain {
		return nil
	}
	p, err := tx.PendingSend(env.Sender, env.MessageId)
	if err == nil && p.ConvID == env.ConversationId {
		return nil
	} else if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	r, err := tx.SendRecord(env.Sender, env.MessageId)
	if err == nil && r.ConvID == env.ConversationId {
		return nil
	} else if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	return &federation.Error{Op: op, Kind: fedwire.Code_CODE_FORBIDDEN,
		Msg: origin + " delivers a message of " + env.Sender + " that this server did not submit"}
}

// applySubmit runs a follower's SUBMIT through the rules of a local Send
// and queues the verdict (SUBMIT_RESULT) for the origin either way.
func (f *Link) applySubmit(tx *storage.Tx, origin string, env *fedwire.Envelope, a *applied) error {
	const op = "homeserver.federation.Submit"
	m := &wire.Send{ConversationId: env.ConversationId, MessageId: env.MessageId, Kind: wire.MessageKind(env.MessageKind),
		Epoch: env.Epoch, Payload: env.Payload, AddDevices: env.AddDevices, RemoveDevices: env.RemoveDevices,
		Welcome: env.Welcome, GroupInfo: env.GroupInfo}
	dev, _ := identity.ParseDevice(env.Sender) // CheckEnvelope parsed it
	in := &hub.Input{Send: m, Sender: dev, NowMs: f.nowMs()}
	var res *Accepted
	verdict := f.hub.ValidateSend(op, m)
	if verdict == nil {
		verdict = tx.Savepoint(func() (err error) { res, err = f.Accept(op, tx, in); return err })
	}
	if k := wire.KindOf(verdict); k == wire.Code_CODE_INTERNAL {
		return verdict // temporary: the follower retries the envelope
	}
	out := &fedwire.Envelope{Id: "res-" + env.Id, Kind: fedwire.EnvelopeKind_ENVELOPE_KIND_SUBMIT_RESULT,
		ConversationId: env.ConversationId, Sender: env.Sender, MessageId: env.MessageId, InReplyTo: env.Id,
		Recipients: []string{env.Sender}, ServerTimeMs: in.NowMs}
	if verdict != nil {
		out.ResultCode, out.ResultMessage = uint32(wire.KindOf(verdict)), verdict.Error()
	} else {
		out.ConversationSeq, out.Epoch, out.ServerTimeMs = res.Rec.ConvSeq, res.Rec.Epoch, res.Rec.CreatedMs
		a.heads = append(a.heads, res.Heads...)
		for d := range res.Remote {
			a.dest(d)
		}
	}
	if err := f.enqueue(tx, origin, out); err != nil {
		return err
	}
	a.dest(origin)
	return nil
}

// applyDeliver applies a hub's accepted message to this server's copy of
// the conversation (hub.ApplyDeliver).
func (f *Link) applyDeliver(tx *storage.Tx, env *fedwire.Envelope, a *applied) error {
	const op = "homeserver.federation.Deliver"
	conv, err := identity.ParseConversation(env.ConversationId)
	if err != nil {
		return &federation.Error{Op: op, Kind: fedwire.Code_CODE_BAD_REQUEST, Msg: err.Error()}
	}
	heads, err := f.hub.ApplyDeliver(op, tx, &hub.Delivered{Conv: conv, Sender: env.Sender, MessageID: env.MessageId,
		Kind: wire.MessageKind(env.MessageKind), Epoch: env.Epoch, Payload: env.Payload, Welcome: env.Welcome,
		GroupInfo: env.GroupInfo, Seq: env.ConversationSeq, PrevSeq: env.PrevConversationSeq, CreatedMs: env.ServerTimeMs,
		Recipients: env.Recipients, AddDevices: env.AddDevices, RemoveDevices: env.RemoveDevices}, f.nowMs())
	a.heads = append(a.heads, heads...)
	return err
}

// applyResult records the hub's verdict on one of our SUBMITs; an
// accepted one becomes the (sender, message id) dedup record.
func (f *Link) applyResult(tx *storage.Tx, env *fedwire.Envelope, a *applied) error {
	p, err := tx.PendingByEnvelope(env.InReplyTo)
	if errors.Is(err, storage.ErrNotFound) {
		return nil // answered before (or forgotten after a refusal)
	} else if err != nil {
		return err
	}
	if p.ConvID != env.ConversationId || p.Sender != env.Sender || p.Done {
		return nil
	}
	if err := tx.ResolvePending(p.EnvelopeID, int(env.ResultCode), env.ResultMessage, env.ConversationSeq, env.Epoch); err != nil {
		return err
	}
	if env.ResultCode == 0 {
		rec := &storage.SendRecord{Sender: p.Sender, MessageID: p.MessageID, ConvID: p.ConvID, ConvSeq: env.ConversationSeq,
			Epoch: env.Epoch, CreatedMs: env.ServerTimeMs}
		if err := tx.InsertSendRecord(rec); err != nil && !errors.Is(err, storage.ErrConflict) {
			return err
		}
	}
	a.resolved = append(a.resolved, p.EnvelopeID)
	return nil
}

// applyDeviceList records a remote user's new device-list version; a gap
// (a version more than one above the last known) triggers a resync.
func (f *Link) applyDeviceList(tx *storage.Tx, env *fedwire.Envelope, a *applied) error {
	old, err := tx.RemoteList(env.Sender)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	if old != nil && env.DeviceListVersion > old.Version+1 {
		a.resync = append(a.resync, env.Sender)
	}
	return tx.PutRemoteList(&storage.RemoteList{User: env.Sender, Version: env.DeviceListVersion, IdentityKey: env.IdentityKey,
		List: env.DeviceList, Signature: env.DeviceListSignature, UpdatedMs: f.nowMs()})
}
