package storage

import (
	"database/sql"
	"slices"
	"sync/atomic"
)

// sendViews is the writer's cache of what ConversationForSend reads: per
// conversation its row (epoch and last sequence kept current by the
// advances the writer queues), its roster and its latest add, and per
// local device its mailbox head (kept current by FanOutTo). A Send of a
// conversation seen before then reads nothing.
//
// It belongs to the writer goroutine (only a writer Tx outside a nested
// Tx.Savepoint uses it) and stays right by being emptied, never patched,
// whenever the database might have changed under it:
//   - any statement the writer runs that is not in viewSafe (Tx.count):
//     roster changes, device inserts and deletes, commits (their heads
//     move in FanOut, their epoch in qAdvance and their GroupInfo in
//     qPutGroupInfo), notices, restore;
//   - a request's ROLLBACK TO (runOne) or a nested one (Tx.Savepoint),
//     which may undo what the cache learnt inside it;
//   - a transaction that aborts or fails to commit.
//
// The statements in viewSafe either change none of it or are those through
// which the cache is kept current (FanOutTo's head updates, the queued
// advances). FanOutTo moves a head only where it still has the value the
// view gave (qFanOutHeads), so a view gone stale by a bug fails its Send
// instead of writing a mailbox row under a sequence already given out.
type sendViews struct {
	convs map[string]*convView
	heads map[string]uint64 // local device id -> mailbox head
	hits  atomic.Uint64     // Sends answered from the cache
	fills atomic.Uint64     // conversations read into it
}

// convView is one conversation as the cache has it.
type convView struct {
	conv      Conversation // without GroupInfo
	roster    map[string]struct{}
	remote    []Member // members without a device here
	local     []string // member devices here, each with a head in sendViews.heads
	lastAdded uint64
}

// Bounds of the cache: past them it is emptied and fills again.
const (
	maxViews     = 16384
	maxViewHeads = 1 << 17
)

// viewSafe are the statements after which the cache still holds (see
// sendViews).
var viewSafe = func() map[string]bool {
	m := map[string]bool{
		qConversation: true, qConversationMeta: true, qConversationForSend: true, qSendRoster: true,
		qMembers: true, qIsMember: true, qCountMembers: true, qMailboxState: true, qEntries: true,
		qAppendLog: true, qAddRefs: true, qSendRecord: true, qInsertSendRecord: true, qSpillSendRecord: true,
		qAck: true, qFanOutHeadsReturning: true, qFanOutInsert: true,
		stmtSavepoint: true, stmtRelease: true,
	}
	for _, qs := range [][]string{qAckRows, qMailboxRows, qLogRows, qAdvanceRows, qFanOutHeads} {
		for _, q := range qs {
			m[q] = true
		}
	}
	return m
}()

// clear empties the cache.
func (v *sendViews) clear() {
	clear(v.convs)
	clear(v.heads)
}

// forgetAfter empties the cache before query runs unless query is
// viewSafe.
func (v *sendViews) forgetAfter(query string) {
	if len(v.convs)+len(v.heads) > 0 && !viewSafe[query] {
		v.clear()
	}
}

// views returns the writer's cache, or nil where it must not be used: a
// read, or inside a nested Tx.Savepoint (whose writes go in at once).
func (t *Tx) views() *sendViews {
	if !t.write || t.pend == nil || t.pend.nested > 0 {
		return nil
	}
	return &t.db.views
}

// SendViewStats reports how many Sends the writer's cache answered and
// how many times it read a conversation into it.
func (db *DB) SendViewStats() (hits, fills uint64) {
	return db.views.hits.Load(), db.views.fills.Load()
}

// qSendRoster is the roster the cache reads after the conversation's row
// (qConversationMeta), with the heads of the member devices here (LEFT
// JOIN: a device without a mailbox is no recipient, as in
// qConversationForSend).
const qSendRoster = `SELECT m.address, m.device_id, s.head, m.added_epoch FROM conversation_members m
	LEFT JOIN mailbox_state s ON s.device_id = m.device_id WHERE m.conv_id = ?`

// cachedSendView answers ConversationForSend from the cache, reading the
// conversation into it first if needed; ok is false when the cache is not
// for t.
func (t *Tx) cachedSendView(id, sender, senderDevice string, remote bool) (sv *SendView, ok bool, err error) {
	vs := t.views()
	if vs == nil {
		return nil, false, nil
	}
	cv := vs.convs[id]
	if cv != nil {
		for _, d := range cv.local {
			if _, ok := vs.heads[d]; !ok {
				cv = nil
				break
			}
		}
	}
	if cv == nil {
		if cv, err = t.fillView(vs, id); err != nil {
			return nil, true, err
		}
		vs.fills.Add(1)
	} else {
		vs.hits.Add(1)
	}
	c := cv.conv
	sv = &SendView{Conv: &c, LastAdded: cv.lastAdded}
	_, sv.Member = cv.roster[sender]
	if remote && len(cv.remote) > 0 {
		sv.Remote = slices.Clone(cv.remote)
	}
	sv.Recipients = make([]Head, 0, len(cv.local))
	for _, d := range cv.local {
		if d != senderDevice {
			sv.Recipients = append(sv.Recipients, Head{DeviceID: d, Seq: vs.heads[d]})
		}
	}
	return sv, true, nil
}

// fillView reads conversation id into the cache.
func (t *Tx) fillView(vs *sendViews, id string) (*convView, error) {
	cv := &convView{roster: map[string]struct{}{}}
	c := &cv.conv
	if err := t.row(qConversationMeta, []any{id}, &c.ID, &c.Kind, &c.Creator, &c.Epoch, &c.LastSeq, &c.CreatedMs); err != nil {
		return nil, err
	}
	t.pend.advanced(c)
	rows, err := t.query(qSendRoster, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	heads := map[string]uint64{}
	for rows.Next() {
		var addr string
		var dev sql.NullString
		var head sql.Null[uint64]
		var added uint64
		if err := rows.Scan(&addr, &dev, &head, &added); err != nil {
			return nil, err
		}
		cv.roster[addr] = struct{}{}
		cv.lastAdded = max(cv.lastAdded, added)
		switch {
		case !dev.Valid:
			cv.remote = append(cv.remote, Member{Address: addr})
		case head.Valid:
			cv.local = append(cv.local, dev.String)
			heads[dev.String] = head.V
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(vs.convs) >= maxViews || len(vs.heads)+len(heads) > maxViewHeads {
		vs.clear()
	}
	if vs.convs == nil {
		vs.convs, vs.heads = map[string]*convView{}, map[string]uint64{}
	}
	vs.convs[id] = cv
	for d, h := range heads {
		vs.heads[d] = h
	}
	return cv, nil
}

// viewAdvanced keeps a cached conversation's epoch and last sequence with
// an advance the writer queued.
func (t *Tx) viewAdvanced(id string, epoch, seq uint64) {
	if vs := t.views(); vs != nil {
		if cv := vs.convs[id]; cv != nil {
			cv.conv.Epoch, cv.conv.LastSeq = epoch, seq
		}
	}
}

// viewHeads records the heads FanOutTo moved. Inside a nested
// Tx.Savepoint, whose rollback would take them back, it empties the cache
// instead.
func (t *Tx) viewHeads(heads []Head) {
	if t.write && t.pend != nil && t.pend.nested > 0 {
		t.db.views.clear()
		return
	}
	if vs := t.views(); vs != nil && len(vs.heads) > 0 {
		for _, h := range heads {
			if _, ok := vs.heads[h.DeviceID]; ok {
				vs.heads[h.DeviceID] = h.Seq
			}
		}
	}
}
