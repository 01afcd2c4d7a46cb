package storage

import (
	"database/sql"
	"errors"
	"fmt"
)

// FedPeer is a pinned federation peer.
type FedPeer struct {
	Domain   string
	Address  string // HOST:PORT
	CAPEM    []byte // nil: system roots
	KeysJSON []byte // its key document as fetched when pinned
	AddedMs  int64
}

// PutFedPeer inserts or replaces a peer.
func (t *Tx) PutFedPeer(p *FedPeer) error {
	_, err := t.exec(`INSERT INTO fed_peers(domain, address, ca_pem, keys_json, added_ms) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT(domain) DO UPDATE SET address = excluded.address, ca_pem = excluded.ca_pem,
		keys_json = excluded.keys_json, added_ms = excluded.added_ms`,
		p.Domain, p.Address, nullIfEmpty(p.CAPEM), nullIfEmpty(p.KeysJSON), p.AddedMs)
	return wrap("storage.PutFedPeer", err)
}

// FedPeers lists the pinned peers by domain.
func (t *Tx) FedPeers() ([]*FedPeer, error) {
	const op = "storage.FedPeers"
	rows, err := t.query(`SELECT domain, address, ca_pem, keys_json, added_ms FROM fed_peers ORDER BY domain`)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var ps []*FedPeer
	for rows.Next() {
		p := &FedPeer{}
		if err := rows.Scan(&p.Domain, &p.Address, &p.CAPEM, &p.KeysJSON, &p.AddedMs); err != nil {
			return nil, wrap(op, err)
		}
		ps = append(ps, p)
	}
	return ps, wrap(op, rows.Err())
}

// FedPolicy is the stored federation policy.
type FedPolicy struct {
	Mode        string // "" when never set
	Allow, Deny []string
}

// FedPolicy returns the stored policy.
func (t *Tx) FedPolicy() (*FedPolicy, error) {
	const op = "storage.FedPolicy"
	p := &FedPolicy{}
	err := t.row(`SELECT value FROM fed_settings WHERE key = 'mode'`, nil, &p.Mode)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, wrap(op, err)
	}
	rows, err := t.query(`SELECT domain, list FROM fed_policy ORDER BY domain`)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	for rows.Next() {
		var d, l string
		if err := rows.Scan(&d, &l); err != nil {
			return nil, wrap(op, err)
		}
		if l == "allow" {
			p.Allow = append(p.Allow, d)
		} else {
			p.Deny = append(p.Deny, d)
		}
	}
	return p, wrap(op, rows.Err())
}

// SetFedMode stores the policy mode.
func (t *Tx) SetFedMode(mode string) error {
	_, err := t.exec(`INSERT INTO fed_settings(key, value) VALUES ('mode', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`, mode)
	return wrap("storage.SetFedMode", err)
}

// SetFedList puts domain on the allow or deny list (off the other one).
func (t *Tx) SetFedList(domain, list string) error {
	_, err := t.exec(`INSERT INTO fed_policy(domain, list) VALUES (?, ?) ON CONFLICT(domain) DO UPDATE SET list = excluded.list`, domain, list)
	return wrap("storage.SetFedList", err)
}

// OutEnvelope is one queued outbound envelope.
type OutEnvelope struct {
	ID          int64 // queue order
	Destination string
	EnvelopeID  string
	Envelope    []byte // serialized fedwire.Envelope
	CreatedMs   int64
}

// Enqueue appends an envelope to its destination's queue.
func (t *Tx) Enqueue(e *OutEnvelope) error {
	_, err := t.exec(`INSERT INTO fed_outbox(destination, envelope_id, envelope, created_ms) VALUES (?, ?, ?, ?)`,
		e.Destination, e.EnvelopeID, e.Envelope, e.CreatedMs)
	if isUnique(err) {
		return wrap("storage.Enqueue", ErrConflict)
	}
	return wrap("storage.Enqueue", err)
}

// Outbox returns up to limit envelopes queued for destination, in order.
func (t *Tx) Outbox(destination string, limit int) ([]*OutEnvelope, error) {
	const op = "storage.Outbox"
	rows, err := t.query(`SELECT id, destination, envelope_id, envelope, created_ms FROM fed_outbox
		WHERE destination = ? ORDER BY id LIMIT ?`, destination, limit)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var es []*OutEnvelope
	for rows.Next() {
		e := &OutEnvelope{}
		if err := rows.Scan(&e.ID, &e.Destination, &e.EnvelopeID, &e.Envelope, &e.CreatedMs); err != nil {
			return nil, wrap(op, err)
		}
		es = append(es, e)
	}
	return es, wrap(op, rows.Err())
}

// Dequeue removes delivered (or finally refused, or expired) envelopes.
func (t *Tx) Dequeue(ids []int64) error {
	for _, id := range ids {
		if _, err := t.exec(`DELETE FROM fed_outbox WHERE id = ?`, id); err != nil {
			return wrap("storage.Dequeue", err)
		}
	}
	return nil
}

// QueueDepths returns the number of queued envelopes per destination.
func (t *Tx) QueueDepths() (map[string]int, error) {
	const op = "storage.QueueDepths"
	rows, err := t.query(`SELECT destination, COUNT(*) FROM fed_outbox GROUP BY destination`)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var d string
		var n int
		if err := rows.Scan(&d, &n); err != nil {
			return nil, wrap(op, err)
		}
		out[d] = n
	}
	return out, wrap(op, rows.Err())
}

// InboundTxn returns the stored hash and result of (origin, txnID).
func (t *Tx) InboundTxn(origin, txnID string) (hash, result []byte, err error) {
	err = t.row(`SELECT hash, result FROM fed_txn_in WHERE origin = ? AND txn_id = ?`, []any{origin, txnID}, &hash, &result)
	return hash, result, wrap("storage.InboundTxn", err)
}

// PutInboundTxn records an answered transaction.
func (t *Tx) PutInboundTxn(origin, txnID string, hash, result []byte, nowMs int64) error {
	_, err := t.exec(`INSERT OR REPLACE INTO fed_txn_in(origin, txn_id, hash, result, created_ms) VALUES (?, ?, ?, ?, ?)`,
		origin, txnID, hash, result, nowMs)
	return wrap("storage.PutInboundTxn", err)
}

// SeenEnvelope reports whether (origin, envelopeID) was applied.
func (t *Tx) SeenEnvelope(origin, envelopeID string) (bool, error) {
	var n int
	err := t.row(`SELECT COUNT(*) FROM fed_env_in WHERE origin = ? AND envelope_id = ?`, []any{origin, envelopeID}, &n)
	return n > 0, wrap("storage.SeenEnvelope", err)
}

// MarkEnvelope records (origin, envelopeID) as applied; ErrConflict if it was.
func (t *Tx) MarkEnvelope(origin, envelopeID string, nowMs int64) error {
	_, err := t.exec(`INSERT INTO fed_env_in(origin, envelope_id, created_ms) VALUES (?, ?, ?)`, origin, envelopeID, nowMs)
	if isUnique(err) {
		return wrap("storage.MarkEnvelope", ErrConflict)
	}
	return wrap("storage.MarkEnvelope", err)
}

// Pending is a local device's Send to a remote hub and, once known, its verdict.
type Pending struct {
	Sender, MessageID, ConvID, EnvelopeID string
	Done                                  bool // the hub answered
	Code                                  int  // wire code of the verdict (0 accepted)
	Message                               string
	ConvSeq, Epoch                        uint64
	CreatedMs                             int64
}

// InsertPending records a submission; ErrConflict if (sender, message id) exists.
func (t *Tx) InsertPending(p *Pending) error {
	_, err := t.exec(`INSERT INTO fed_pending(sender, message_id, conv_id, envelope_id, created_ms) VALUES (?, ?, ?, ?, ?)`,
		p.Sender, p.MessageID, p.ConvID, p.EnvelopeID, p.CreatedMs)
	if isUnique(err) {
		return wrap("storage.InsertPending", ErrConflict)
	}
	return wrap("storage.InsertPending", err)
}

func scanPending(t *Tx, op, where string, args ...any) (*Pending, error) {
	p := &Pending{}
	var code sql.NullInt64
	err := t.row(`SELECT sender, message_id, conv_id, envelope_id, code, message, conv_seq, epoch, created_ms
		FROM fed_pending WHERE `+where, args, &p.Sender, &p.MessageID, &p.ConvID, &p.EnvelopeID, &code, &p.Message,
		&p.ConvSeq, &p.Epoch, &p.CreatedMs)
	if err != nil {
		return nil, wrap(op, err)
	}
	p.Done, p.Code = code.Valid, int(code.Int64)
	return p, nil
}

// PendingSend returns the submission of (sender, messageID).
func (t *Tx) PendingSend(sender, messageID string) (*Pending, error) {
	return scanPending(t, "storage.PendingSend", `sender = ? AND message_id = ?`, sender, messageID)
}

// PendingByEnvelope returns the submission sent as envelopeID.
func (t *Tx) PendingByEnvelope(envelopeID string) (*Pending, error) {
	return scanPending(t, "storage.PendingByEnvelope", `envelope_id = ?`, envelopeID)
}

// ResolvePending records the hub's verdict; ErrNotFound if already resolved or absent.
func (t *Tx) ResolvePending(envelopeID string, code int, msg string, convSeq, epoch uint64) error {
	return wrap("storage.ResolvePending", affected(t.exec(`UPDATE fed_pending SET code = ?, message = ?, conv_seq = ?, epoch = ?
		WHERE envelope_id = ? AND code IS NULL`, code, msg, convSeq, epoch, envelopeID)))
}

// DeletePending forgets a refused submission so a retry is submitted anew.
func (t *Tx) DeletePending(sender, messageID string) error {
	return wrap("storage.DeletePending", affected(t.exec(`DELETE FROM fed_pending WHERE sender = ? AND message_id = ?`, sender, messageID)))
}

// RemoteList is the last known device list of a remote user.
type RemoteList struct {
	User                         string
	Version                      uint64
	IdentityKey, List, Signature []byte
	UpdatedMs                    int64
}

// RemoteList returns what is known of user's device list; ErrNotFound if nothing.
func (t *Tx) RemoteList(user string) (*RemoteList, error) {
	r := &RemoteList{User: user}
	err := t.row(`SELECT version, identity_key, list, signature, updated_ms FROM fed_remote_lists WHERE user = ?`, []any{user},
		&r.Version, &r.IdentityKey, &r.List, &r.Signature, &r.UpdatedMs)
	if err != nil {
		return nil, wrap("storage.RemoteList", err)
	}
	return r, nil
}

// PutRemoteList stores a remote user's list if its version is newer.
func (t *Tx) PutRemoteList(r *RemoteList) error {
	_, err := t.exec(`INSERT INTO fed_remote_lists(user, version, identity_key, list, signature, updated_ms) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT(user) DO UPDATE SET version = excluded.version, identity_key = excluded.identity_key, list = excluded.list,
		signature = excluded.signature, updated_ms = excluded.updated_ms WHERE excluded.version > fed_remote_lists.version`,
		r.User, r.Version, nullIfEmpty(r.IdentityKey), nullIfEmpty(r.List), nullIfEmpty(r.Signature), r.UpdatedMs)
	return wrap("storage.PutRemoteList", err)
}

// AppendMailbox appends log entry (convID, convSeq) to one local device's
// mailbox (welcome: the entry's welcome) and returns the new head.
func (t *Tx) AppendMailbox(deviceID, convID string, convSeq uint64, welcome bool, nowMs int64) (Head, error) {
	const op = "storage.AppendMailbox"
	h := Head{DeviceID: deviceID}
	if err := t.row(`UPDATE mailbox_state SET head = head + 1 WHERE device_id = ? RETURNING head`, []any{deviceID}, &h.Seq); err != nil {
		return h, wrap(op, err)
	}
	w := 0
	if welcome {
		w = 1
	}
	if _, err := t.exec(`INSERT INTO mailbox(device_id, seq, conv_id, conv_seq, welcome, created_ms) VALUES (?, ?, ?, ?, ?, ?)`,
		deviceID, h.Seq, convID, convSeq, w, nowMs); err != nil {
		return h, wrap(op, err)
	}
	return h, wrap(op, t.addRefs(convID, convSeq, 1))
}

// AppendMailboxNotice appends to device deviceID's mailbox the notice that
// its message msgID (conversation convID, seq convSeq), sent as device
// address sender, could not be delivered to failedServer. ErrNotFound when
// the device has no mailbox.
func (t *Tx) AppendMailboxNotice(deviceID, convID string, convSeq uint64, msgID, sender, failedServer string, nowMs int64) (Head, error) {
	const op = "storage.AppendMailboxNotice"
	h := Head{DeviceID: deviceID}
	if failedServer == "" || msgID == "" || sender == "" {
		return h, wrap(op, errors.New("a notice names a server, a message and its sender"))
	}
	if err := t.row(`UPDATE mailbox_state SET head = head + 1 WHERE device_id = ? RETURNING head`, []any{deviceID}, &h.Seq); err != nil {
		return h, wrap(op, err)
	}
	if _, err := t.exec(`INSERT INTO mailbox(device_id, seq, conv_id, conv_seq, welcome, created_ms, failed_server, failed_message_id, failed_sender)
		VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?)`, deviceID, h.Seq, convID, convSeq, nowMs, failedServer, msgID, sender); err != nil {
		return h, wrap(op, err)
	}
	// The notice reads the entry's kind and epoch: it keeps the entry as
	// a delivery does.
	return h, wrap(op, t.addRefs(convID, convSeq, 1))
}

// RemoteDomainsOfUser lists the other domains that have a device in a
// conversation with one of the local user's devices.
func (t *Tx) RemoteDomainsOfUser(userID int64, self string) ([]string, error) {
	const op = "storage.RemoteDomainsOfUser"
	rows, err := t.query(`SELECT DISTINCT substr(m2.address, instr(m2.address, '@') + 1, instr(m2.address, '/') - instr(m2.address, '@') - 1)
		FROM devices d1 JOIN conversation_members m1 ON m1.device_id = d1.id
		JOIN conversation_members m2 ON m2.conv_id = m1.conv_id
		WHERE d1.user_id = ?1 AND m2.device_id IS NULL
		UNION SELECT DISTINCT substr(m.conv_id, instr(m.conv_id, '@') + 1)
		FROM devices d JOIN conversation_members m ON m.device_id = d.id WHERE d.user_id = ?1`, userID)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, wrap(op, err)
		}
		if d != self && d != "" {
			out = append(out, d)
		}
	}
	return out, wrap(op, rows.Err())
}

// SwapConvDest records seq as the last conversation sequence sent to
// destination and returns the previous one (0: none).
func (t *Tx) SwapConvDest(convID, destination string, seq uint64) (prev uint64, err error) {
	const op = "storage.SwapConvDest"
	err = t.row(`SELECT last_seq FROM fed_conv_dest WHERE conv_id = ? AND destination = ?`, []any{convID, destination}, &prev)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return 0, wrap(op, err)
	}
	_, err = t.exec(`INSERT INTO fed_conv_dest(conv_id, destination, last_seq) VALUES (?, ?, ?)
		ON CONFLICT(conv_id, destination) DO UPDATE SET last_seq = excluded.last_seq`, convID, destination, seq)
	return prev, wrap(op, err)
}

// Savepoint runs fn in a nested savepoint: when fn fails only its changes
// are undone and the rest of the request goes on.
func (t *Tx) Savepoint(fn func() error) error {
	// Pending mailbox rows go in before, and none wait inside: the
	// rollback below must not undo rows it does not know of.
	if err := t.flush(); err != nil {
		return wrap("storage.Savepoint", err)
	}
	if _, err := t.tx.ExecContext(t.ctx, `SAVEPOINT inner`); err != nil {
		return wrap("storage.Savepoint", err)
	}
	if t.pend != nil {
		t.pend.nested++
		defer func() { t.pend.nested-- }()
	}
	if ferr := fn(); ferr != nil {
		if t.write {
			t.db.views.clear() // they may hold what the rollback undoes
		}
		if _, err := t.tx.ExecContext(t.ctx, `ROLLBACK TO inner`); err != nil {
			return wrap("storage.Savepoint", err)
		}
		if _, err := t.tx.ExecContext(t.ctx, `RELEASE inner`); err != nil {
			return wrap("storage.Savepoint", err)
		}
		return ferr
	}
	_, err := t.tx.ExecContext(t.ctx, `RELEASE inner`)
	return wrap("storage.Savepoint", err)
}

// CountFederationRows counts the rows of the federation inbound tables and
// the conversation log (tests check that refused input stored nothing).
func (t *Tx) CountFederationRows() (map[string]int, error) {
	out := map[string]int{}
	for _, tbl := range []string{"fed_txn_in", "fed_env_in", "conversation_log", "conversations", "mailbox", "fed_remote_lists"} {
		var n int
		if err := t.row(`SELECT COUNT(*) FROM `+tbl, nil, &n); err != nil {
			return nil, wrap("storage.CountFederationRows", err)
		}
		out[tbl] = n
	}
	return out, nil
}

// DeleteFederationRecords deletes up to limit inbound dedup records
// (transactions and envelopes) and answered submissions created before
// cutoffMs.
func (t *Tx) DeleteFederationRecords(cutoffMs int64, limit int) (int64, error) {
	const op = "storage.DeleteFederationRecords"
	var total int64
	for _, q := range []string{
		`DELETE FROM fed_txn_in WHERE (origin, txn_id) IN (SELECT origin, txn_id FROM fed_txn_in WHERE created_ms < ? LIMIT ?)`,
		`DELETE FROM fed_env_in WHERE (origin, envelope_id) IN (SELECT origin, envelope_id FROM fed_env_in WHERE created_ms < ? LIMIT ?)`,
		`DELETE FROM fed_pending WHERE (sender, message_id) IN (SELECT sender, message_id FROM fed_pending WHERE code IS NOT NULL AND created_ms < ? LIMIT ?)`,
	} {
		res, err := t.exec(q, cutoffMs, limit)
		n, err := rowsAffected(op, res, err)
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// SkipDeliver records that the DELIVER of seq in convID (whose previous
// DELIVER to destination was prev) will never reach destination.
func (t *Tx) SkipDeliver(convID, destination string, seq, prev uint64) error {
	_, err := t.exec(`INSERT INTO fed_deliver_skipped(conv_id, destination, seq, prev) VALUES (?, ?, ?, ?)
		ON CONFLICT(conv_id, destination, seq) DO UPDATE SET prev = excluded.prev`, convID, destination, seq, prev)
	return wrap("storage.SkipDeliver", err)
}

// maxSkipChain bounds how many consecutive skipped DELIVERs DeliverPrev
// follows (sequences only go down along the chain, so it cannot loop; the
// bound keeps one call's cost finite whatever the table holds).
const maxSkipChain = 1 << 16

// DeliverPrev returns the DELIVER of convID that destination last got or
// will get before one naming prev as its previous: prev itself, or, when
// prev was skipped (SkipDeliver), the one before it, followed through
// consecutive skips.
func (t *Tx) DeliverPrev(convID, destination string, prev uint64) (uint64, error) {
	const op = "storage.DeliverPrev"
	for range maxSkipChain {
		if prev == 0 {
			return 0, nil
		}
		var before uint64
		err := t.row(`SELECT prev FROM fed_deliver_skipped WHERE conv_id = ? AND destination = ? AND seq = ?`,
			[]any{convID, destination, prev}, &before)
		if errors.Is(err, ErrNotFound) {
			return prev, nil
		}
		if err != nil {
			return 0, wrap(op, err)
		}
		if before >= prev {
			return 0, wrap(op, fmt.Errorf("skipped DELIVER %d of %s names a later one, %d, as previous", prev, convID, before))
		}
		prev = before
	}
	return prev, nil
}

// HasSkippedDelivers reports whether any DELIVER to destination was
// skipped and not yet pruned: the senders' hot path asks once per batch
// before looking up each envelope.
func (t *Tx) HasSkippedDelivers(destination string) (bool, error) {
	var n int
	err := t.row(`SELECT EXISTS(SELECT 1 FROM fed_deliver_skipped WHERE destination = ?)`, []any{destination}, &n)
	return n != 0, wrap("storage.HasSkippedDelivers", err)
}

// PruneSkippedDelivers forgets the skipped DELIVERs of convID to
// destination below seq, once destination accepted seq.
func (t *Tx) PruneSkippedDelivers(convID, destination string, seq uint64) error {
	_, err := t.exec(`DELETE FROM fed_deliver_skipped WHERE conv_id = ? AND destination = ? AND seq < ?`, convID, destination, seq)
	return wrap("storage.PruneSkippedDelivers", err)
}
