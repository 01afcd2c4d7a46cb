package storage

import (
	"errors"
	"fmt"
)

// Head is a device's mailbox head after an append: "deliver to DeviceID
// entries up to Seq".
type Head struct {
	DeviceID string
	Seq      uint64
}

// Entry is one mailbox entry joined with the logged message it refers to.
type Entry struct {
	Seq       uint64
	ConvID    string
	ConvSeq   uint64 // the log sequence; a welcome refers to its commit
	Welcome   bool   // the entry is the commit's welcome, not the commit
	Sender    string
	MessageID string
	Kind      int
	Epoch     uint64
	Payload   []byte
	CreatedMs int64
	// FailedServer is set on a delivery-failed notice: the entry names the
	// sender's own message that could not reach this server.
	FailedServer string
	// GroupInfo is, on a welcome entry, the GroupInfo with the ratchet
	// tree that the commit carried (nil if none was kept).
	GroupInfo []byte
}

// FanOut appends log entry (convID, convSeq) to the mailbox of every local
// member device except excludeDevice and returns the new heads: the heads
// move in one statement, the rows follow (queueRows). With welcome set, it
// appends the entry's welcome to the devices added at epoch addedEpoch
// instead.
func (t *Tx) FanOut(convID string, convSeq uint64, excludeDevice string, welcome bool, addedEpoch uint64, nowMs int64) ([]Head, error) {
	const op = "storage.FanOut"
	qHead, qInsert, args := qFanOutHead, qFanOutInsert, []any{convID, excludeDevice}
	if welcome {
		qHead, qInsert, args = qFanOutHeadWelcome, qFanOutInsertWelcome, append(args, addedEpoch)
	}
	rows, err := t.query(qHead, args...)
	if err != nil {
		return nil, wrap(op, err)
	}
	var heads []Head
	for rows.Next() {
		var h Head
		if err := rows.Scan(&h.DeviceID, &h.Seq); err != nil {
			rows.Close()
			return nil, wrap(op, err)
		}
		heads = append(heads, h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, wrap(op, err)
	}
	if len(heads) == 0 {
		return nil, nil
	}
	if err := t.queueRows(heads, convID, convSeq, excludeDevice, welcome, addedEpoch, nowMs, qInsert); err != nil {
		return nil, wrap(op, err)
	}
	return heads, wrap(op, t.addRefs(convID, convSeq, len(heads)))
}

// addRefs counts n more mailbox rows referring to log entry (convID,
// convSeq) (LogEntry.Refs); nothing when the entry is not in the log.
// An entry the request queued (QueueLog) counts them before it goes in;
// one an earlier request queued goes in first, so that a rollback of
// this request takes the count back with the rows.
func (t *Tx) addRefs(convID string, convSeq uint64, n int) error {
	if p := t.pend; p != nil {
		for i := range p.logs {
			if e := &p.logs[i]; e.ConvID == convID && e.Seq == convSeq {
				if i >= p.logMark {
					e.Refs += n
					return nil
				}
				if err := t.flush(); err != nil {
					return err
				}
				break
			}
		}
	}
	_, err := t.exec(qAddRefs, n, convID, convSeq)
	return err
}

// FanOutTo appends log entry (convID, convSeq) to the mailboxes of recips:
// the devices ConversationForSend returned (every local member but
// excludeDevice) with their heads as they were then; nothing may have
// moved them since, and a head that moved fails the call (ErrStaleHeads)
// instead of giving out its sequence twice. It returns the new heads. It
// costs less than FanOut: for up to 8 recipients the heads move in a
// statement that returns nothing, and the entry's reference count is not
// updated: the caller logged it with Refs = len(recips).
func (t *Tx) FanOutTo(convID string, convSeq uint64, excludeDevice string, recips []Head, nowMs int64) ([]Head, error) {
	const op = "storage.FanOutTo"
	if len(recips) == 0 {
		return nil, nil
	}
	heads := make([]Head, len(recips))
	for i, r := range recips {
		heads[i] = Head{DeviceID: r.DeviceID, Seq: r.Seq + 1}
	}
	if len(recips) <= len(qFanOutHeads) {
		args := make([]any, 0, 2*len(recips))
		for _, r := range recips {
			args = append(args, r.DeviceID, r.Seq)
		}
		res, err := t.exec(qFanOutHeads[len(recips)-1], args...)
		if err != nil {
			return nil, wrap(op, err)
		}
		if n, err := res.RowsAffected(); err != nil || n != int64(len(recips)) {
			return nil, fmt.Errorf("%s: moved %d heads for %d recipients (%v): %w", op, n, len(recips), err, ErrStaleHeads)
		}
	} else if err := t.moveHeads(convID, excludeDevice, heads); err != nil {
		return nil, wrap(op, err)
	}
	t.viewHeads(heads)
	return heads, wrap(op, t.queueRows(heads, convID, convSeq, excludeDevice, false, 0, nowMs, qFanOutInsert))
}

// ErrStaleHeads: FanOutTo was given mailbox heads that had moved.
var ErrStaleHeads = errors.New("mailbox heads moved since they were read")

// moveHeads moves the heads of every local member but excludeDevice and
// checks they are the heads given (moved by one).
func (t *Tx) moveHeads(convID, excludeDevice string, heads []Head) error {
	rows, err := t.query(qFanOutHeadsReturning, convID, excludeDevice)
	if err != nil {
		return err
	}
	defer rows.Close()
	want := make(map[string]uint64, len(heads))
	for _, h := range heads {
		want[h.DeviceID] = h.Seq
	}
	n := 0
	for rows.Next() {
		var h Head
		if err := rows.Scan(&h.DeviceID, &h.Seq); err != nil {
			return err
		}
		if w, ok := want[h.DeviceID]; !ok || w != h.Seq {
			return fmt.Errorf("device %s at %d, expected %d: %w", h.DeviceID, h.Seq, w, ErrStaleHeads)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if n != len(heads) {
		return fmt.Errorf("moved %d heads for %d recipients: %w", n, len(heads), ErrStaleHeads)
	}
	return nil
}

// queueRows adds the mailbox rows of heads: the rows of up to
// maxRowsPerInsert recipients wait for the writer to insert them with the
// rest of its transaction's (pending.go); more go in at once, in one
// statement from the roster (qInsert, as FanOut's).
func (t *Tx) queueRows(heads []Head, convID string, convSeq uint64, excludeDevice string, welcome bool, addedEpoch uint64, nowMs int64, qInsert string) error {
	if len(heads) > maxRowsPerInsert {
		_, err := t.exec(qInsert, convID, excludeDevice, addedEpoch, convSeq, nowMs)
		return err
	}
	rs := make([]mailboxRow, len(heads))
	for i, h := range heads {
		rs[i] = mailboxRow{device: h.DeviceID, seq: h.Seq, conv: convID, convSeq: convSeq, welcome: welcome, createdMs: nowMs}
	}
	if t.pend != nil && t.pend.nested == 0 {
		t.pend.rows = append(t.pend.rows, rs...)
		return nil
	}
	_, err := t.insertRows(rs, nil)
	return err
}

// MailboxState returns a device's head and cumulative ack.
func (t *Tx) MailboxState(deviceID string) (head, acked uint64, err error) {
	err = t.row(qMailboxState, []any{deviceID}, &head, &acked)
	return head, acked, wrap("storage.MailboxState", err)
}

// LastMailboxEntry is the sequence of the device's last mailbox entry (0:
// none). It is below the head when entries were numbered past a gap that
// holds none (SkipRestoredSequences) or the last ones were deleted.
func (t *Tx) LastMailboxEntry(deviceID string) (uint64, error) {
	var seq uint64
	err := t.row(`SELECT COALESCE(MAX(seq), 0) FROM mailbox WHERE device_id = ?`, []any{deviceID}, &seq)
	return seq, wrap("storage.LastMailboxEntry", err)
}

// Ack raises a device's cumulative ack to upTo (never lowers it).
// ErrNotFound if upTo is beyond the head or the device has no mailbox.
func (t *Tx) Ack(deviceID string, upTo uint64) error {
	return wrap("storage.Ack", affected(t.exec(qAck, upTo, deviceID)))
}

// entrySelect reads mailbox entries with their logged message; a
// delivery-failed notice (failed_server set) carries its own fields.
const entrySelect = `SELECT m.seq, m.conv_id, m.conv_seq, m.welcome,
	coalesce(m.failed_sender, l.sender), coalesce(m.failed_message_id, l.message_id), coalesce(l.kind, 0), coalesce(l.epoch, 0),
	CASE WHEN m.failed_server IS NOT NULL THEN NULL WHEN m.welcome THEN l.welcome ELSE l.payload END, m.created_ms,
	coalesce(m.failed_server, ''), CASE WHEN m.welcome AND m.failed_server IS NULL THEN l.group_info END
	FROM mailbox m LEFT JOIN conversation_log l ON l.conv_id = m.conv_id AND l.seq = m.conv_seq
	WHERE (l.seq IS NOT NULL OR m.failed_server IS NOT NULL)`

func (t *Tx) entries(op, query string, args ...any) ([]*Entry, error) {
	rows, err := t.query(query, args...)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var es []*Entry
	for rows.Next() {
		e := &Entry{}
		if err := rows.Scan(&e.Seq, &e.ConvID, &e.ConvSeq, &e.Welcome, &e.Sender, &e.MessageID, &e.Kind,
			&e.Epoch, &e.Payload, &e.CreatedMs, &e.FailedServer, &e.GroupInfo); err != nil {
			return nil, wrap(op, err)
		}
		es = append(es, e)
	}
	return es, wrap(op, rows.Err())
}

// Entries returns up to limit mailbox entries with seq > after, in order.
func (t *Tx) Entries(deviceID string, after uint64, limit int) ([]*Entry, error) {
	return t.entries("storage.Entries", qEntries, deviceID, after, limit)
}

// History returns up to limit entries of one conversation in a device's
// mailbox, newest first, with seq < before (before 0: from the newest).
func (t *Tx) History(deviceID, convID string, before uint64, limit int) ([]*Entry, error) {
	if before == 0 {
		before = 1<<63 - 1
	}
	return t.entries("storage.History", entrySelect+` AND m.device_id = ? AND m.conv_id = ? AND m.seq < ? ORDER BY m.seq DESC LIMIT ?`,
		deviceID, convID, before, limit)
}

// DeleteAcked deletes up to limit mailbox entries created before cutoffMs
// that their device has acknowledged.
func (t *Tx) DeleteAcked(cutoffMs int64, limit int) (int64, error) {
	res, err := t.exec(`DELETE FROM mailbox WHERE (device_id, seq) IN (
		SELECT m.device_id, m.seq FROM mailbox m JOIN mailbox_state s ON s.device_id = m.device_id
		WHERE m.created_ms < ? AND m.seq <= s.acked LIMIT ?)`, cutoffMs, limit)
	return rowsAffected("storage.DeleteAcked", res, err)
}

// LogOrderSlack is how far out of time order, in milliseconds, log
// entries may be appended and still be deleted by the first retention
// pass after they are old (DeleteUnreferencedLog): entries are logged in
// the writer's order with times taken before, so two Sends can be
// written in the other order than their times. A pass reads the entries
// of this last stretch before the cut-off again in the next pass.
const LogOrderSlack = 10_000

// DeleteUnreferencedLog passes over up to limit log entries in log
// order and deletes those created before cutoffMs that no mailbox row
// refers to. A pass starts where the last one left the log's mark (after
// 0) and continues after next while next is not 0; it ends at the first
// entry created LogOrderSlack after the cut-off. The mark moves up to the
// first entry not older than the cut-off: an entry it passes that is
// still referenced is deleted when its last mailbox row goes (the
// mailbox_unref trigger, migration 0015), so no pass reads it again.
//
// The log is appended in time order but for the slack, so a pass leaves
// no old unreferenced entry behind. An entry logged further out of order
// (a follower's entry stamped with its hub's clock, a clock stepped back)
// waits until the entries before it are old.
func (t *Tx) DeleteUnreferencedLog(cutoffMs, after int64, limit int) (deleted, next int64, err error) {
	const op = "storage.DeleteUnreferencedLog"
	var mark, markCutoff int64
	if err := t.row(`SELECT log_id, log_cutoff_ms FROM retention_marks WHERE id = 1`, nil, &mark, &markCutoff); err != nil {
		return 0, 0, wrap(op, err)
	}
	if cutoffMs < markCutoff {
		// A longer retention than the last pass's: the entries behind the
		// mark are not all old any more. Pass over the log again.
		mark, after = 0, 0
	}
	from := max(after, mark)
	// Continuing after the mark: the entry after it was not old.
	frozen := from > mark
	rows, err := t.query(`SELECT id, created_ms FROM conversation_log WHERE id > ? ORDER BY id LIMIT ?`, from, limit)
	if err != nil {
		return 0, 0, wrap(op, err)
	}
	last, n, stopped := from, 0, false
	for rows.Next() {
		var id, created int64
		if err := rows.Scan(&id, &created); err != nil {
			rows.Close()
			return 0, 0, wrap(op, err)
		}
		n++
		if created >= cutoffMs+LogOrderSlack {
			stopped = true
			break
		}
		last = id
		if created >= cutoffMs {
			frozen = true
		} else if !frozen {
			mark = id
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, wrap(op, err)
	}
	if last > from {
		res, err := t.exec(`DELETE FROM conversation_log WHERE id > ? AND id <= ? AND created_ms < ? AND refs <= 0`, from, last, cutoffMs)
		if deleted, err = rowsAffected(op, res, err); err != nil {
			return 0, 0, err
		}
	}
	if _, err := t.exec(`UPDATE retention_marks SET log_id = ?, log_cutoff_ms = ? WHERE id = 1`, mark, cutoffMs); err != nil {
		return 0, 0, wrap(op, err)
	}
	if stopped || n < limit {
		return deleted, 0, nil
	}
	return deleted, last, nil
}

func rowsAffected(op string, res interface{ RowsAffected() (int64, error) }, err error) (int64, error) {
	if err != nil {
		return 0, wrap(op, err)
	}
	n, err := res.RowsAffected()
	return n, wrap(op, err)
}
