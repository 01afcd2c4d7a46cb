package homeserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"hearth/federation"
	"hearth/federation/fedwire"
	"hearth/homeserver/hub"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/storage"
)

// enqueue appends env to dest's durable queue inside tx.
func (f *fed) enqueue(tx *storage.Tx, dest string, env *fedwire.Envelope) error {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(env)
	if err != nil {
		return err
	}
	err = tx.Enqueue(&storage.OutEnvelope{Destination: dest, EnvelopeID: env.Id, Envelope: b, CreatedMs: f.s.nowMs()})
	if errors.Is(err, storage.ErrConflict) {
		return nil // queued before (same deterministic id)
	}
	return err
}

// Batch implements federation.Queue.
func (f *fed) Batch(ctx context.Context, dest string, limit int) ([]federation.Queued, error) {
	var rows []*storage.OutEnvelope
	if err := f.s.db.Read(ctx, func(tx *storage.Tx) (err error) { rows, err = tx.Outbox(dest, limit); return err }); err != nil {
		return nil, err
	}
	out := make([]federation.Queued, 0, len(rows))
	for _, r := range rows {
		env := &fedwire.Envelope{}
		if err := proto.Unmarshal(r.Envelope, env); err != nil {
			return nil, fmt.Errorf("queued envelope %d: %w", r.ID, err)
		}
		out = append(out, federation.Queued{QueueID: r.ID, Envelope: env, CreatedMs: r.CreatedMs})
	}
	return out, nil
}

// Finish implements federation.Queue: a SUBMIT refused for good tells its
// waiting device.
func (f *fed) Finish(ctx context.Context, dest string, done []federation.Queued, results []*fedwire.EnvelopeResult) error {
	a := &applied{}
	err := f.s.db.Write(ctx, func(tx *storage.Tx) error {
		a.resolved = nil
		ids := make([]int64, len(done))
		for i, q := range done {
			ids[i] = q.QueueID
			r := results[i]
			if r.Code == fedwire.Code_CODE_OK || q.Envelope.Kind != fedwire.EnvelopeKind_ENVELOPE_KIND_SUBMIT {
				if r.Code != fedwire.Code_CODE_OK {
					f.s.log.Warn("federation: envelope refused by destination", "destination", dest, "envelope", q.Envelope.Id, "code", r.Code.String())
				}
				continue
			}
			err := tx.ResolvePending(q.Envelope.Id, int(wireCode(r.Code)), fmt.Sprintf("refused by %s: %s", dest, r.Message), 0, 0)
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
func (f *fed) Expire(ctx context.Context, dest string, expired []federation.Queued) error {
	a := &applied{}
	err := f.s.db.Write(ctx, func(tx *storage.Tx) error {
		a.resolved = nil
		ids := make([]int64, len(expired))
		for i, q := range expired {
			ids[i] = q.QueueID
			env := q.Envelope
			f.s.log.Error("federation: envelope undeliverable, expired", "destination", dest, "kind", env.Kind.String(),
				"envelope", env.Id, "conversation", env.ConversationId, "sender", env.Sender)
			if env.Kind == fedwire.EnvelopeKind_ENVELOPE_KIND_DELIVER {
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

// domainOf returns the domain of a device address user@domain/DEVICE.
func domainOf(addr string) string {
	u, _, _ := strings.Cut(addr, "/")
	_, d, _ := strings.Cut(u, "@")
	return d
}

// fanOutRemote queues one DELIVER per other server with devices in the
// conversation: the recipients are its devices on the roster as it was
// (minus the sender); a commit's added devices there get its welcome.
func (f *fed) fanOutRemote(tx *storage.Tx, r *hub.Result, m *wire.Send) (map[string]bool, error) {
	c, entry, before := r.Conv, r.Log, r.Before
	var remote map[string]bool
	recips := map[string][]string{}
	adds := map[string][]string{}
	for _, mb := range before {
		if mb.DeviceID == "" && mb.Address != entry.Sender {
			d := domainOf(mb.Address)
			recips[d] = append(recips[d], mb.Address)
		}
	}
	if m.Kind == wire.MessageKind_MESSAGE_KIND_COMMIT {
		for _, a := range m.AddDevices {
			if d := domainOf(a); d != f.s.cfg.Domain && a != entry.Sender {
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
			env.AddDevices, env.RemoveDevices = m.AddDevices, m.RemoveDevices
			if len(adds[d]) > 0 {
				// The GroupInfo goes with the Welcome: it carries the
				// ratchet tree a large group's Welcome omits.
				env.Welcome, env.GroupInfo = m.Welcome, m.GroupInfo
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

// sendRemote handles a local device's Send to a conversation hubbed
// elsewhere: the submission is stored and its SUBMIT queued in one
// transaction; the answer is the hub's verdict, or CODE_UNAVAILABLE when it
// has not come within SendWait (the retry with the same message id waits
// for the same submission).
func (ss *session) sendRemote(id uint64, m *wire.Send, sender, hub string) {
	const op = "homeserver.Send"
	f := ss.s.fed
	var p *storage.Pending
	err := ss.s.db.Write(ss.ctx, func(tx *storage.Tx) error {
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
		p = &storage.Pending{Sender: sender, MessageID: m.MessageId, ConvID: m.ConversationId, EnvelopeID: newEnvelopeID("sub-"), CreatedMs: ss.s.nowMs()}
		if err := tx.InsertPending(p); err != nil {
			return err
		}
		return f.enqueue(tx, hub, &fedwire.Envelope{Id: p.EnvelopeID, Kind: fedwire.EnvelopeKind_ENVELOPE_KIND_SUBMIT,
			ConversationId: m.ConversationId, Sender: sender, MessageId: m.MessageId, MessageKind: uint32(m.Kind),
			Epoch: m.Epoch, Payload: m.Payload, AddDevices: m.AddDevices, RemoveDevices: m.RemoveDevices,
			Welcome: m.Welcome, GroupInfo: m.GroupInfo, ServerTimeMs: p.CreatedMs})
	})
	if err != nil {
		ss.writeError(id, internal(op, err))
		return
	}
	f.out.Wake(hub)
	ss.later(func() {
		fr, err := f.await(ss.ctx, op, p.EnvelopeID)
		ss.answer(id, fr, err)
	})
}

// await waits (up to SendWait) for the verdict on a SUBMIT.
func (f *fed) await(ctx context.Context, op, envID string) (*wire.ServerFrame, error) {
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
		err := f.s.db.Read(ctx, func(tx *storage.Tx) (err error) { p, err = tx.PendingByEnvelope(envID); return err })
		if err != nil {
			return nil, internal(op, err)
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

// propagateList queues a user's new device list for every server sharing
// a conversation with them, in the transaction that stored it.
func (f *fed) propagateList(tx *storage.Tx, userName string, userID int64, version uint64, sl *wire.SignedDeviceList) error {
	domains, err := tx.RemoteDomainsOfUser(userID, f.s.cfg.Domain)
	if err != nil || len(domains) == 0 {
		return err
	}
	idKey, err := tx.IdentityKey(userID)
	if err != nil {
		return err
	}
	user := f.s.userAddress(userName)
	for _, d := range domains {
		env := &fedwire.Envelope{Id: fmt.Sprintf("dl-%s-%d", user, version), Kind: fedwire.EnvelopeKind_ENVELOPE_KIND_DEVICE_LIST,
			Sender: user, DeviceList: sl.List, DeviceListSignature: sl.Signature, IdentityKey: idKey, DeviceListVersion: version,
			ServerTimeMs: f.s.nowMs()}
		if len(env.Id) > 128 {
			sum := sha256.Sum256([]byte(env.Id))
			env.Id = "dl-" + hex.EncodeToString(sum[:16])
		}
		if err := f.enqueue(tx, d, env); err != nil {
			return err
		}
	}
	return nil
}

// remoteDomain reports the domain of a user address that is not ours.
func (f *fed) remoteDomain(user string) (string, bool) {
	if !strings.Contains(user, "@") {
		return "", false
	}
	u, err := identity.NormalizeUser(user)
	if err != nil || u.Domain == f.s.cfg.Domain {
		return "", false
	}
	return u.Domain, true
}

// splitUsers separates local users from remote ones (by domain).
func (f *fed) splitUsers(users []string) (local []string, remote map[string][]string) {
	for _, u := range users {
		if d, ok := f.remoteDomain(u); ok {
			if remote == nil {
				remote = map[string][]string{}
			}
			remote[d] = append(remote[d], u)
			continue
		}
		local = append(local, u)
	}
	return local, remote
}

// query sends a signed query and maps a refusal to a wire error.
func (f *fed) query(ctx context.Context, op, domain string, q *fedwire.Query) (*fedwire.QueryResult, error) {
	if !f.policy.Allowed(domain) {
		return nil, wire.Errorf(op, wire.Code_CODE_FORBIDDEN, "federation with %s is not allowed here", domain)
	}
	q.Origin, q.Destination, q.QueryId, q.OriginTimeMs = f.s.cfg.Domain, domain, newEnvelopeID("q-"), f.s.nowMs()
	sq, err := federation.SignQuery(f.signingKey(), q)
	if err != nil {
		return nil, internal(op, err)
	}
	res, err := f.client.Query(ctx, domain, sq)
	if err != nil {
		return nil, &wire.Error{Op: op, Kind: wire.Code_CODE_UNAVAILABLE, Msg: "server " + domain + " unreachable", RetryAfter: 1000, Err: err}
	}
	if res.Code != fedwire.Code_CODE_OK {
		return nil, wire.Errorf(op, wireCode(res.Code), "%s: %s", domain, res.Message)
	}
	return res, nil
}

// fetchRemoteList fetches a remote user's signed device list and records its version.
func (f *fed) fetchRemoteList(ctx context.Context, domain, user string) (*wire.DeviceListResult, error) {
	const op = "homeserver.FetchDeviceList"
	res, err := f.query(ctx, op, domain, &fedwire.Query{Body: &fedwire.Query_FetchDeviceList{FetchDeviceList: &fedwire.FetchDeviceList{User: user}}})
	if err != nil {
		return nil, err
	}
	dl := res.GetDeviceList()
	if dl == nil || domainOf(dl.User+"/x") != domain {
		return nil, wire.Errorf(op, wire.Code_CODE_UNAVAILABLE, "%s answered without a device list of its own user", domain)
	}
	if l, err := identity.UnmarshalDeviceList(dl.DeviceList); err == nil {
		err := f.s.db.Write(ctx, func(tx *storage.Tx) error {
			return tx.PutRemoteList(&storage.RemoteList{User: dl.User, Version: l.Version, IdentityKey: dl.IdentityKey,
				List: dl.DeviceList, Signature: dl.Signature, UpdatedMs: f.s.nowMs()})
		})
		if err != nil {
			f.s.log.Warn("federation: record remote device list", "user", dl.User, "err", err)
		}
	}
	return &wire.DeviceListResult{User: dl.User, IdentityKey: dl.IdentityKey,
		DeviceList: &wire.SignedDeviceList{List: dl.DeviceList, Signature: dl.Signature}}, nil
}

// resyncList fetches the full list of a user after a version gap.
func (f *fed) resyncList(user string) {
	d, ok := f.remoteDomain(user)
	if !ok {
		return
	}
	if _, err := f.fetchRemoteList(context.Background(), d, user); err != nil {
		f.s.log.Warn("federation: device list resync failed", "user", user, "err", err)
	}
}

// claimRemote claims KeyPackages of users on domain for requester.
func (f *fed) claimRemote(ctx context.Context, domain string, users, exclude []string, requester string) (*wire.ClaimResult, error) {
	const op = "homeserver.ClaimKeyPackages"
	res, err := f.query(ctx, op, domain, &fedwire.Query{Body: &fedwire.Query_ClaimKeyPackages{ClaimKeyPackages: &fedwire.ClaimKeyPackages{
		Users: users, ExcludeDevices: exclude, Requester: requester}}})
	if err != nil {
		return nil, err
	}
	out := &wire.ClaimResult{}
	for _, p := range res.GetClaim().GetPackages() {
		if domainOf(p.User+"/x") != domain {
			return nil, wire.Errorf(op, wire.Code_CODE_UNAVAILABLE, "%s answered for another domain's user", domain)
		}
		out.Packages = append(out.Packages, &wire.ClaimedKeyPackage{User: p.User, DeviceId: p.DeviceId, KeyPackage: p.KeyPackage, LastResort: p.LastResort})
	}
	return out, nil
}
