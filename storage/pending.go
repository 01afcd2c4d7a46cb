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

// pendingRows are the mailbox rows the writer's requests have fanned out
// but not inserted yet: the writer inserts all of a transaction's rows
// together, a few multi-row statements per transaction instead of one
// per Send (flush). Rows wait only while the statements run are known
// not to read or change the mailbox or the devices it refers to
// (deferSafe); any other statement, the end of the batch and a nested
// Tx.Savepoint insert them first, so that nobody sees the mailbox without
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
	nested  int // inside Tx.Savepoint: FanOut inserts at once
	args    []any
}

// begin is called when a request's savepoint opens.
func (p *pendingRows) begin() {
	p.mark, p.carried = len(p.rows), p.carried[:0]
}

// release is called when the request's savepoint is released: its rows
// now belong to the transaction.
func (p *pendingRows) release() {
	p.mark, p.carried = len(p.rows), p.carried[:0]
}

// rollback is called after ROLLBACK TO the request's savepoint: the
// request's own rows go, earlier ones inserted inside it wait again.
func (p *pendingRows) rollback() {
	if len(p.carried) > 0 { // a flush ran inside the request: mark is 0
		p.rows = append(p.rows[:0], p.carried...)
	} else {
		p.rows = p.rows[:p.mark]
	}
	p.mark, p.carried = len(p.rows), p.carried[:0]
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

// deferSafe are the statements that leave pending rows waiting: none of
// them reads or writes the mailbox or deletes a device.
var deferSafe = func() map[string]bool {
	m := map[string]bool{
		qFanOutHead: true, qFanOutHeadWelcome: true,
		qConversation: true, qConversationMeta: true, qConversationForSend: true, qFanOutHeadsAll: true,
		qMembers: true, qIsMember: true, qCountMembers: true, qAdvance: true, qAdvanceGroupInfo: true,
		qAppendLog: true, qAddRefs: true, qSendRecord: true, qInsertSendRecord: true, qClaimSendRecord: true,
		qAck: true, qMailboxState: true,
		stmtSavepoint: true, stmtRelease: true, stmtRollbackTo: true,
	}
	for _, q := range qAckRows {
		m[q] = true
	}
	for _, q := range qMailboxRows {
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

// insertRows inserts rows in as few statements as the sizes of
// qMailboxRows allow (at most 7 for up to 127 rows).
func (t *Tx) insertRows(rows []mailboxRow, args []any) ([]any, error) {
	for len(rows) > 0 {
		k := len(qMailboxRows) - 1
		for 1<<k > len(rows) {
			k--
		}
		n := 1 << k
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

// flush inserts the pending rows.
func (t *Tx) flush() error {
	p := t.pend
	if p == nil || len(p.rows) == 0 {
		return nil
	}
	var err error
	if p.args, err = t.insertRows(p.rows, p.args); err != nil {
		return wrap("storage.flush", err)
	}
	p.carried = append(p.carried, p.rows[:p.mark]...)
	p.rows, p.mark = p.rows[:0], 0
	return nil
}

// beforeStmt inserts the pending rows before a statement that might see
// the mailbox without them.
func (t *Tx) beforeStmt(query string) error {
	if t.pend == nil || len(t.pend.rows) == 0 || deferSafe[query] {
		return nil
	}
	return t.flush()
}
