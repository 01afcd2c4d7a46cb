package fedlink

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"hearth/federation"
	"hearth/federation/fedwire"
	"hearth/homeserver/hub"
	"hearth/homeserver/wire"
	"hearth/storage"
)

// enqueue appends env to dest's durable queue inside tx.
func (f *Link) enqueue(tx *storage.Tx, dest string, env *fedwire.Envelope) error {
	return enqueue(tx, dest, env, f.nowMs())
}

func enqueue(tx *storage.Tx, dest string, env *fedwire.Envelope, nowMs int64) error {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(env)
	if err != nil {
		return err
	}
	err = tx.Enqueue(&storage.OutEnvelope{Destination: dest, EnvelopeID: env.Id, Envelope: b, CreatedMs: nowMs})
	if errors.Is(err, storage.ErrConflict) {
		return nil // queued before (same deterministic id)
	}
	return err
}

// Batch implements federation.Queue.
func (f *Link) Batch(ctx context.Context, dest string, limit int) ([]federation.Queued, error) {
	var out []federation.Queued
	err := f.db.Read(ctx, func(tx *storage.Tx) error {
		rows, err := tx.Outbox(dest, limit)
		if err != nil {
			return err
		}
		skipped, err := tx.HasSkippedDelivers(dest)
		if err != nil {
			return err
		}
		out = make([]federation.Queued, 0, len(rows))
		for _, r := range rows {
			env := &fedwire.Envelope{}
			if err := proto.Unmarshal(r.Envelope, env); err != nil {
				return fmt.Errorf("queued envelope %d: %w", r.ID, err)
			}
			if skipped && inOrder(env) {
				// A DELIVER before it that dest will never get (expired or
				// refused for good) is not waited for: it names the one
				// before the skipped ones.
				if env.PrevConversationSeq, err = tx.DeliverPrev(env.ConversationId, dest, env.PrevConversationSeq); err != nil {
					return err
				}
			}
			out = append(out, federation.Queued{QueueID: r.ID, Envelope: env, CreatedMs: r.CreatedMs})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// inOrder reports whether env is a DELIVER of the conversation order
// (prev_conversation_seq applies), not a delivery-failed notice.
func inOrder(env *fedwire.Envelope) bool {
	return env.Kind == fedwire.EnvelopeKind_ENVELOPE_KIND_DELIVER && env.FailedServer == ""
}

// skipDeliver records that env, a DELIVER of the conversation order, will
// never reach dest, so that the next one does not wait for it.
func skipDeliver(tx *storage.Tx, dest string, env *fedwire.Envelope) error {
	if !inOrder(env) {
		return nil
	}
	return tx.SkipDeliver(env.ConversationId, dest, env.ConversationSeq, env.PrevConversationSeq)
}

// Finish implements federation.Queue: a SUBMIT refused for good tells its
// waiting device; a DELIVER refused for good becomes a delivery-failed
// notice for the device that sent the message, and later DELIVERs of its
// conversation name the one before it as previous (skipDeliver).
func (f *Link) Finish(ctx context.Context, dest string, done []federation.Queued, results []*fedwire.EnvelopeResult) error {
	a := &applied{}
	err := f.db.Write(ctx, func(tx *storage.Tx) error {
		a.resolved = nil
		skipped, err := tx.HasSkippedDelivers(dest)
		if err != nil {
			return err
		}
		ids := make([]int64, len(done))
		for i, q := range done {
			ids[i] = q.QueueID
			r := results[i]
			if skipped && r.Code == fedwire.Code_CODE_OK && inOrder(q.Envelope) {
				if err := tx.PruneSkippedDelivers(q.Envelope.ConversationId, dest, q.Envelope.ConversationSeq); err != nil {
					return err
				}
			}
			if r.Code == fedwire.Code_CODE_OK || q.Envelope.Kind != fedwire.EnvelopeKind_ENVELOPE_KIND_SUBMIT {
				if r.Code != fedwire.Code_CODE_OK {
					f.log.Warn("federation: envelope refused by destination", "destination", dest, "envelope", q.Envelope.Id,
						"kind", q.Envelope.Kind.String(), "conversation", q.Envelope.ConversationId, "code", r.Code.String())
					if err := skipDeliver(tx, dest, q.Envelope); err != nil {
						return err
					}
					// A DELIVER refused for good never reaches dest's
					// members: tell the device that sent the message, as
					// for one that expired.
					if q.Envelope.Kind == fedwire.EnvelopeKind_ENVELOPE_KIND_DELIVER {
						if err := f.notifyFailed(tx, dest, q.Envelope, a); err != nil {
							return err
						}
					}
				}
				continue
			}
			err := tx.ResolvePending(q.Envelope.Id, int(wireKind(r.Code)), fmt.Sprintf("refused by %s: %s", dest, r.Message), 0, 0)
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				return err
			}
			a.resolved = append(a.resolved, q.Envelope.Id)
		}
		return tx.Dequeue(ids)
	})
	if err == nil {
		f.afterCommit(a)
	}
	return err
}

// Expire implements federation.Queue: undeliverable SUBMITs fail their
// sender's Send (it learns on its wait or retry); an undeliverable DELIVER
// becomes a delivery-failed notice for the device that sent the message;
// every expiry is logged with its conversation.
func (f *Link) Expire(ctx context.Context, dest string, expired []federation.Queued) error {
	a := &applied{}
	err := f.db.Write(ctx, func(tx *storage.Tx) error {
		a.resolved = nil
		ids := make([]int64, len(expired))
		for i, q := range expired {
			ids[i] = q.QueueID
			env := q.Envelope
			f.log.Error("federation: envelope undeliverable, expired", "destination", dest, "kind", env.Kind.String(),
				"envelope", env.Id, "conversation", env.ConversationId, "sender", env.Sender)
			if env.Kind == fedwire.EnvelopeKind_ENVELOPE_KIND_DELIVER {
				if err := skipDeliver(tx, dest, env); err != nil {
					return err
				}
				if err := f.notifyFailed(tx, dest, env, a); err != nil {
					return err
				}
				continue
			}
			if env.Kind != fedwire.EnvelopeKind_ENVELOPE_KIND_SUBMIT {
				continue
			}
			err := tx.ResolvePending(env.Id, int(wire.Code_CODE_UNAVAILABLE), "the hub "+dest+" could not be reached before the message expired", 0, 0)
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				return err
			}
			a.resolved = append(a.resolved, env.Id)
		}
		return tx.Dequeue(ids)
	})
	if err == nil {
		f.afterCommit(a)
	}
	return err
}

// Accepted is a Send the hub accepted, with the servers a DELIVER was
// queued for (their sender loops are woken after the commit: WakeAll).
type Accepted struct {
	*hub.Result
	Remote map[string]bool
}

// WakeAll starts the sender loops of the servers a DELIVER was queued for.
func (f *Link) WakeAll(a *Accepted) {
	for d := range a.Remote {
		f.out.Wake(d)
	}
}

// Accept runs a Send through the hub (hub.Accept) and, in the same
// transaction, queues the DELIVERs for the other servers with members.
func (f *Link) Accept(op string, tx *storage.Tx, in *hub.Input) (*Accepted, error) {
	r, err := f.hub.Accept(op, tx, in)
	if err != nil {
		return nil, err
	}
	a := &Accepted{Result: r}
	if !r.Dup {
		if a.Remote, err = f.fanOutRemote(tx, r, in.Send); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// fanOutRemote queues one DELIVER per other server with devices in the
// conversation: the recipients are its devices on the roster as it was
// (minus the sender); a commit's added devices there get its welcome.
func (f *Link) fanOutRemote(tx *storage.Tx, r *hub.Result, m *wire.Send) (map[string]bool, error) {
	c, entry, before := r.Conv, r.Log, r.Before
	var remote map[string]bool
	recips := map[string][]string{}
	adds := map[string][]string{}
	for _, mb := range before {
		if mb.DeviceID == "" && mb.Address != entry.Sender {
			d := deviceDomain(mb.Address)
			recips[d] = append(recips[d], mb.Address)
		}
	}
	if m.Kind == wire.MessageKind_MESSAGE_KIND_COMMIT {
		for _, a := range m.AddDevices {
			if d := deviceDomain(a); d != f.domain && a != entry.Sender {
				adds[d] = append(adds[d], a)
			}
		}
	}
	for d := range adds {
		if _, ok := recips[d]; !ok {
			recips[d] = nil
		}
	}
	for d, rs := range recips {
		prev, err := tx.SwapConvDest(c.ID, d, entry.Seq)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256([]byte(c.ID + "\x00" + d + "\x00" + fmt.Sprint(entry.Seq)))
		env := &fedwire.Envelope{Id: "dlv-" + hex.EncodeToString(sum[:16]), Kind: fedwire.EnvelopeKind_ENVELOPE_KIND_DELIVER,
			ConversationId: c.ID, Sender: entry.Sender, MessageId: entry.MessageID, MessageKind: uint32(entry.Kind),
			Epoch: entry.Epoch, Payload: entry.Payload, ConversationSeq: entry.Seq, PrevConversationSeq: prev,
			Recipients: rs, ServerTimeMs: entry.CreatedMs}
		if m.Kind == wire.MessageKind_MESSAGE_KIND_COMMIT {
			// Every commit's GroupInfo goes to every follower: it carries
			// the ratchet tree a large group's Welcome omits, and it is
			// what a device of the follower's users that fell out of step
			// rejoins from (GetConversation is answered by the follower).
			env.AddDevices, env.RemoveDevices, env.GroupInfo = m.AddDevices, m.RemoveDevices, m.GroupInfo
			if len(adds[d]) > 0 {
				env.Welcome = m.Welcome
			}
		}
		if err := f.enqueue(tx, d, env); err != nil {
			return nil, err
		}
		if remote == nil {
			remote = map[string]bool{}
		}
		remote[d] = true
	}
	return remote, nil
}

// Submit stores a local device's Send to a conversation hubbed elsewhere
// as a pending submission and queues its SUBMIT for the hub, in one
// transaction, then wakes the hub's sender loop; a hub domain known to
// have no server is refused CODE_NOT_FOUND at once. A retry of a submission
// that was not refused returns the same envelope: its verdict is awaited
// (Await) rather than submitted anew.
func (f *Link) Submit(ctx context.Context, m *wire.Send, sender, hubDomain string) (envelopeID string, err error) {
	// A hub that cannot exist is refused now, not queued for a week.
	if err := f.pb.noServer("homeserver.Send", hubDomain); err != nil {
		return "", err
	}
	var p *storage.Pending
	err = f.db.Write(ctx, func(tx *storage.Tx) error {
		old, err := tx.PendingSend(sender, m.MessageId)
		switch {
		case err == nil && !(old.Done && old.Code != 0):
			p = old
			return nil
		case err == nil:
			if err := tx.DeletePending(sender, m.MessageId); err != nil { // refused before: submit anew
				return err
			}
		case !errors.Is(err, storage.ErrNotFound):
			return err
		}
		p = &storage.Pending{Sender: sender, MessageID: m.MessageId, ConvID: m.ConversationId, EnvelopeID: newEnvelopeID("sub-"), CreatedMs: f.nowMs()}
		if err := tx.InsertPending(p); err != nil {
			return err
		}
		return f.enqueue(tx, hubDomain, &fedwire.Envelope{Id: p.EnvelopeID, Kind: fedwire.EnvelopeKind_ENVELOPE_KIND_SUBMIT,
			ConversationId: m.ConversationId, Sender: sender, MessageId: m.MessageId, MessageKind: uint32(m.Kind),
			Epoch: m.Epoch, Payload: m.Payload, AddDevices: m.AddDevices, RemoveDevices: m.RemoveDevices,
			Welcome: m.Welcome, GroupInfo: m.GroupInfo, ServerTimeMs: p.CreatedMs})
	})
	if err != nil {
		return "", err
	}
	f.out.Wake(hubDomain)
	return p.EnvelopeID, nil
}

// Await waits (up to SendWait) for the hub's verdict on a SUBMIT and
// answers the device's Send with it.
func (f *Link) Await(ctx context.Context, op, envID string) (*wire.ServerFrame, error) {
	f.mu.Lock()
	ch, ok := f.waiters[envID]
	if !ok {
		ch = make(chan struct{})
		f.waiters[envID] = ch
	}
	f.mu.Unlock()
	t := time.NewTimer(f.cfg.SendWait)
	defer t.Stop()
	for {
		var p *storage.Pending
		err := f.db.Read(ctx, func(tx *storage.Tx) (err error) { p, err = tx.PendingByEnvelope(envID); return err })
		if err != nil {
			return nil, wire.Internal(op, err)
		}
		if p.Done {
			if p.Code != 0 {
				return nil, &wire.Error{Op: op, Kind: wire.Code(p.Code), Msg: p.Message}
			}
			return &wire.ServerFrame{Body: &wire.ServerFrame_SendOk{SendOk: &wire.SendOK{MessageId: p.MessageID,
				ConversationSeq: p.ConvSeq, Epoch: p.Epoch, ServerTimeMs: p.CreatedMs}}}, nil
		}
		select {
		case <-ch:
		case <-t.C:
			return nil, &wire.Error{Op: op, Kind: wire.Code_CODE_UNAVAILABLE, RetryAfter: 1000,
				Msg: "the conversation's hub has not answered yet; retry with the same message id"}
		case <-ctx.Done():
			return nil, &wire.Error{Op: op, Kind: wire.Code_CODE_UNAVAILABLE, Msg: "session ended"}
		}
		f.mu.Lock()
		if c, ok := f.waiters[envID]; ok {
			ch = c
		} else {
			ch = make(chan struct{})
			f.waiters[envID] = ch
		}
		f.mu.Unlock()
	}
}

// DeviceListQueuer returns the function that queues a user of domain's
// new device list for every server sharing a conversation with them, in
// the transaction that stored it (keydir.Propagate). It needs no Link:
// the sender loops find the envelopes when they next run.
func DeviceListQueuer(domain string, now func() time.Time) func(tx *storage.Tx, userName string, userID int64, version uint64, sl *wire.SignedDeviceList) error {
	return func(tx *storage.Tx, userName string, userID int64, version uint64, sl *wire.SignedDeviceList) error {
		return queueDeviceList(tx, domain, now().UnixMilli(), userName, userID, version, sl)
	}
}

func queueDeviceList(tx *storage.Tx, domain string, nowMs int64, userName string, userID int64, version uint64, sl *wire.SignedDeviceList) error {
	domains, err := tx.RemoteDomainsOfUser(userID, domain)
	if err != nil || len(domains) == 0 {
		return err
	}
	idKey, err := tx.IdentityKey(userID)
	if err != nil {
		return err
	}
	user := userName + "@" + domain
	for _, d := range domains {
		env := &fedwire.Envelope{Id: fmt.Sprintf("dl-%s-%d", user, version), Kind: fedwire.EnvelopeKind_ENVELOPE_KIND_DEVICE_LIST,
			Sender: user, DeviceList: sl.List, DeviceListSignature: sl.Signature, IdentityKey: idKey, DeviceListVersion: version,
			ServerTimeMs: nowMs}
		if len(env.Id) > 128 {
			sum := sha256.Sum256([]byte(env.Id))
			env.Id = "dl-" + hex.EncodeToString(sum[:16])
		}
		if err := enqueue(tx, d, env, nowMs); err != nil {
			return err
		}
	}
	return nil
}
