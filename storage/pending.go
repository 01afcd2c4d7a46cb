package storage

import (
	"strings"
)

// mailboxRow is one mailbox entry of a log entry, as FanOut computed it.
type mailboxRow struct {
	device    string
	seq       uint64
	conv      string
	convSeq   uint64
	welcome   bool
	createdMs int64
}

// pendingRows are the mailbox rows the writer's requests have fanned out,
// the log entries they queued (Tx.QueueLog) and their conversations'
// advances (AdvanceConversation), not written yet:
// the writer inserts all of a transaction's rows together, a few
// multi-row statements per transaction instead of one per Send (flush).
// Rows wait only while the statements run are known not to read or
// change the mailbox, the log or the devices they refer to (deferSafe);
// any other statement, the end of the batch and a nested Tx.Savepoint
// insert them first, so that nobody sees the mailbox or the log without
// them.
//
// Each request runs in its own savepoint (runOne); the bookkeeping below
// keeps the pending rows in step with what a ROLLBACK TO undoes.
type pendingRows struct {
	rows []mailboxRow
	// mark: rows[:mark] are of requests before the current one.
	mark int
	// carried are rows of earlier requests inserted by a flush inside the
	// current request's savepoint: its rollback undoes their insert too,
	// so they wait again.
	carried []mailboxRow
	// The same for the log entries,
	logs        []LogEntry
	logMark     int
	logsCarried []LogEntry
	// and for the conversations' advances (pending_advance.go).
	advs        []convAdvance
	advMark     int
	advsCarried []convAdvance
	lastAdv     map[string]int // conversation -> index of its latest advance in advs, or higher
	nested      int            // inside Tx.Savepoint: FanOut, QueueLog and AdvanceConversation write at once
	args        []any
}

// reset empties p for a new transaction.
func (p *pendingRows) reset() {
	p.rows, p.mark, p.carried = p.rows[:0], 0, p.carried[:0]
	clear(p.logs) // no payload kept past its transaction
	p.logs, p.logMark, p.logsCarried, p.nested = p.logs[:0], 0, p.logsCarried[:0], 0
	p.advs, p.advMark, p.advsCarried = p.advs[:0], 0, p.advsCarried[:0]
	clear(p.lastAdv)
}

// begin is called when a request's savepoint opens.
func (p *pendingRows) begin() {
	p.mark, p.carried = len(p.rows), p.carried[:0]
	p.logMark, p.logsCarried = len(p.logs), p.logsCarried[:0]
	p.advMark, p.advsCarried = len(p.advs), p.advsCarried[:0]
}

// release is called when the request's savepoint is released: its rows
// now belong to the transaction.
func (p *pendingRows) release() { p.begin() }

// rollback is called after ROLLBACK TO the request's savepoint: the
// request's own rows go, earlier ones inserted inside it wait again.
func (p *pendingRows) rollback() {
	if len(p.carried) > 0 { // a flush ran inside the request: mark is 0
		p.rows = append(p.rows[:0], p.carried...)
	} else {
		p.rows = p.rows[:p.mark]
	}
	if len(p.logsCarried) > 0 {
		p.logs = append(p.logs[:0], p.logsCarried...)
	} else {
		clear(p.logs[p.logMark:])
		p.logs = p.logs[:p.logMark]
	}
	if len(p.advsCarried) > 0 {
		p.advs = append(p.advs[:0], p.advsCarried...)
		clear(p.lastAdv)
		for i, a := range p.advs {
			p.lastAdv[a.conv] = i
		}
	} else {
		p.advs = p.advs[:p.advMark]
	}
	p.begin()
}

// maxRowsPerInsert is the most rows one insert statement carries
// (6 parameters each).
const maxRowsPerInsert = 64

// qMailboxRows[k] inserts 1<<k mailbox rows.
var qMailboxRows = func() []string {
	var qs []string
	for n := 1; n <= maxRowsPerInsert; n *= 2 {
		qs = append(qs, `INSERT INTO mailbox(device_id, seq, conv_id, conv_seq, welcome, created_ms) VALUES `+
			strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?), ", n), ", "))
	}
	return qs
}()

// qLogRows[k] inserts 1<<k log entries (11 parameters each).
var qLogRows = func() []string {
	var qs []string
	for n := 1; n <= maxRowsPerInsert; n *= 2 {
		qs = append(qs, `INSERT INTO conversation_log(conv_id, seq, sender, message_id, kind, epoch, payload, welcome, group_info, created_ms, refs) VALUES `+
			strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?), ", n), ", "))
	}
	return qs
}()

// deferSafe are the statements that leave pending rows waiting: none of
// them reads or writes the mailbox or the log entries waiting, or
// deletes a device; those that read a conversation's epoch and last
// sequence see its advance waiting (pendingRows.advanced). qAppendLog
// inserts another entry than those (its sequence is one the
// conversation has not given out); qAddRefs is not run for a waiting
// entry (addRefs).
var deferSafe = func() map[string]bool {
	m := map[string]bool{
		qFanOutHead: true, qFanOutHeadWelcome: true,
		qConversation: true, qConversationMeta: true, qConversationForSend: true, qFanOutHeadsReturning: true, qSendRoster: true,
		qMembers: true, qIsMember: true, qCountMembers: true,
		qAppendLog: true, qAddRefs: true, qSendRecord: true, qInsertSendRecord: true, qSpillSendRecord: true,
		qAck: true, qMailboxState: true,
		stmtSavepoint: true, stmtRelease: true, stmtRollbackTo: true,
	}
	for _, q := range qAckRows {
		m[q] = true
	}
	for _, q := range qMailboxRows {
		m[q] = true
	}
	for _, q := range qLogRows {
		m[q] = true
	}
	for _, q := range qAdvanceRows {
		m[q] = true
	}
	for _, q := range qFanOutHeads {
		m[q] = true
	}
	return m
}()

// The writer's per-request savepoint.
const (
	stmtSavepoint  = "SAVEPOINT req"
	stmtRelease    = "RELEASE req"
	stmtRollbackTo = "ROLLBACK TO req"
)

// chunk picks the multi-row statement for the next n rows (n > 0) among
// stmts statements of 1, 2, 4 … 1<<(stmts-1) rows: its index k and its
// size, the largest power of two at most n.
func chunk(n, stmts int) (k, size int) {
	k = stmts - 1
	for 1<<k > n {
		k--
	}
	return k, 1 << k
}

// insertRows inserts rows in as few statements as the sizes of
// qMailboxRows allow (at most 7 for up to 127 rows).
func (t *Tx) insertRows(rows []mailboxRow, args []any) ([]any, error) {
	for len(rows) > 0 {
		k, n := chunk(len(rows), len(qMailboxRows))
		args = args[:0]
		for _, r := range rows[:n] {
			args = append(args, r.device, r.seq, r.conv, r.convSeq, r.welcome, r.createdMs)
		}
		if _, err := t.execNow(qMailboxRows[k], args...); err != nil {
			return args, err
		}
		rows = rows[n:]
	}
	return args, nil
}

// insertLogs inserts log entries like insertRows.
func (t *Tx) insertLogs(es []LogEntry, args []any) ([]any, error) {
	for len(es) > 0 {
		k, n := chunk(len(es), len(qLogRows))
		args = args[:0]
		for i := range es[:n] {
			e := &es[i]
			args = append(args, e.ConvID, e.Seq, e.Sender, e.MessageID, e.Kind, e.Epoch, e.Payload,
				nullIfEmpty(e.Welcome), nullIfEmpty(e.GroupInfo), e.CreatedMs, e.Refs)
		}
		if _, err := t.execNow(qLogRows[k], args...); err != nil {
			return args, err
		}
		es = es[n:]
	}
	return args, nil
}

// flush inserts the pending log entries and mailbox rows. A duplicate
// log entry fails the statement, and so the whole transaction: QueueLog
// is only for sequences the conversation has not given out.
func (t *Tx) flush() error {
	p := t.pend
	if p == nil || len(p.rows)+len(p.logs)+len(p.advs) == 0 {
		return nil
	}
	var err error
	if len(p.logs) > 0 {
		if p.args, err = t.insertLogs(p.logs, p.args); err != nil {
			return wrap("storage.flush: log", err)
		}
		p.logsCarried = append(p.logsCarried, p.logs[:p.logMark]...)
		clear(p.logs)
		p.logs, p.logMark = p.logs[:0], 0
	}
	if len(p.rows) > 0 {
		if p.args, err = t.insertRows(p.rows, p.args); err != nil {
			return wrap("storage.flush", err)
		}
		p.carried = append(p.carried, p.rows[:p.mark]...)
		p.rows, p.mark = p.rows[:0], 0
	}
	if len(p.advs) > 0 {
		if err := t.updateAdvances(p.advs); err != nil {
			return wrap("storage.flush: conversations", err)
		}
		p.advsCarried = append(p.advsCarried, p.advs[:p.advMark]...)
		p.advs, p.advMark = p.advs[:0], 0
		clear(p.lastAdv)
	}
	clear(p.args)
	return nil
}

// beforeStmt inserts the pending rows before a statement that might see
// the mailbox or the log without them.
func (t *Tx) beforeStmt(query string) error {
	if t.pend == nil || len(t.pend.rows)+len(t.pend.logs)+len(t.pend.advs) == 0 || deferSafe[query] {
		return nil
	}
	return t.flush()
}
