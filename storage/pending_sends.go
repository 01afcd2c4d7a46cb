package storage

import (
	"fmt"
	"strings"
)

// The writer's dedup records and head moves of a transaction, not written
// yet (pendingRows): a Send handed to the writer with its (sender, message
// id) (SubmitSend) has its record looked up with those of the other Sends
// of the transaction in one statement when the transaction begins
// (lookupSends); ClaimSendRecord then answers from what the lookup found
// and from the claims of the transaction, and the new records go in with
// the other pending rows in a multi-row INSERT (flush). FanOutTo's head
// moves wait the same way and go in with one UPDATE per transaction that
// moves each head only from the value the moves started from (flushHeads).

// padded picks the statement for the next n rows (n > 0) among stmts
// statements of 1, 2, 4 … 1<<(stmts-1) rows, padding instead of splitting:
// its index k, its size and the rows it takes (at most the size). The
// statements below ignore a row whose first column is NULL, so that a
// transaction's rows take one statement, not one per bit of their number.
func padded(n, stmts int) (k, size, take int) {
	for k = 0; k < stmts-1 && 1<<k < n; k++ {
	}
	return k, 1 << k, min(n, 1<<k)
}

// pad appends the NULL rows of width columns that fill a statement of
// size rows taking take.
func pad(args []any, size, take, width int) []any {
	for range (size - take) * width {
		args = append(args, nil)
	}
	return args
}

// sendKey is a dedup record's key.
type sendKey struct{ sender, messageID string }

// headMove is FanOutTo's move of one device's head, from one value to the
// next.
type headMove struct {
	device   string
	from, to uint64
}

// qLookupSends[k] reads the dedup records of 1<<k keys (2 parameters
// each; a NULL key matches nothing).
var qLookupSends = func() []string {
	var qs []string
	for n := 1; n <= maxRowsPerInsert; n *= 2 {
		qs = append(qs, `SELECT s.sender, s.message_id, s.conv_id, s.conv_seq, s.epoch, s.created_ms FROM (VALUES `+
			strings.TrimSuffix(strings.Repeat("(?, ?), ", n), ", ")+`) AS v JOIN sends s ON s.sender = v.column1 AND s.message_id = v.column2`)
	}
	return qs
}()

// qSendRows[k] inserts up to 1<<k dedup records (6 parameters each; a
// row with a NULL sender is padding). A record already there fails the
// statement, and so the transaction: the claims were checked against the
// lookup and each other.
var qSendRows = func() []string {
	var qs []string
	for n := 1; n <= maxRowsPerInsert; n *= 2 {
		qs = append(qs, `INSERT INTO sends(sender, message_id, conv_id, conv_seq, epoch, created_ms) SELECT * FROM (VALUES `+
			strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?), ", n), ", ")+`) WHERE column1 IS NOT NULL`)
	}
	return qs
}()

// qMoveHeads[k] moves up to 1<<k heads, each only where it still has the
// value the moves started from (3 parameters each: device, from, to; a
// NULL device is padding).
var qMoveHeads = func() []string {
	var qs []string
	for n := 1; n <= maxRowsPerInsert; n *= 2 {
		qs = append(qs, `UPDATE mailbox_state SET head = v.column3 FROM (VALUES `+
			strings.TrimSuffix(strings.Repeat("(?, ?, ?), ", n), ", ")+
			`) AS v WHERE mailbox_state.device_id = v.column1 AND mailbox_state.head = v.column2`)
	}
	return qs
}()

// headsStmts are the deferSafe statements that read or move mailbox
// heads: the head moves waiting go in before them (beforeStmt), so that
// they see every head where the views have it.
var headsStmts = func() map[string]bool {
	m := map[string]bool{
		qFanOutHead: true, qFanOutHeadWelcome: true, qFanOutHeadsReturning: true,
		qConversationForSend: true, qSendRoster: true, qAck: true, qMailboxState: true,
	}
	for _, q := range qAckRows {
		m[q] = true
	}
	for _, q := range qFanOutHeads {
		m[q] = true
	}
	return m
}()

// lookupSends reads the dedup records of keys into p.known: a key with no
// record maps to nil. The lookup holds until a statement that is not
// deferSafe runs (beforeStmt), or InsertSendRecord or a claim by
// statement writes the key.
func (t *Tx) lookupSends(keys []sendKey) error {
	p := t.pend
	if p.known == nil {
		p.known = make(map[sendKey]*SendRecord, len(keys))
	}
	distinct := keys[:0]
	for _, k := range keys {
		if _, ok := p.known[k]; !ok {
			p.known[k] = nil
			distinct = append(distinct, k)
		}
	}
	keys = distinct
	args := make([]any, 0, 2*maxRowsPerInsert)
	for len(keys) > 0 {
		k, size, n := padded(len(keys), len(qLookupSends))
		args = args[:0]
		for _, key := range keys[:n] {
			args = append(args, key.sender, key.messageID)
		}
		args = pad(args, size, n, 2)
		if err := t.lookupChunk(qLookupSends[k], args); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}

func (t *Tx) lookupChunk(query string, args []any) error {
	rows, err := t.query(query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		r := &SendRecord{}
		if err := rows.Scan(&r.Sender, &r.MessageID, &r.ConvID, &r.ConvSeq, &r.Epoch, &r.CreatedMs); err != nil {
			return err
		}
		t.pend.known[sendKey{r.Sender, r.MessageID}] = r
	}
	return rows.Err()
}

// claimPending claims r's key without a statement where the lookup or
// the transaction's claims answer for it; ok is false where they do not
// (the caller runs the statement).
func (p *pendingRows) claimPending(r *SendRecord) (claimed, ok bool) {
	k := sendKey{r.Sender, r.MessageID}
	if _, dup := p.claimed[k]; dup {
		return false, true
	}
	rec, looked := p.known[k]
	if !looked || p.nested > 0 {
		return false, false
	}
	if rec != nil {
		return false, true
	}
	if p.claimed == nil {
		p.claimed = map[sendKey]int{}
	}
	p.claimed[k] = len(p.claims)
	p.claims = append(p.claims, *r)
	return true, true
}

// pendingRecord is the dedup record of (sender, messageID) as the
// transaction's claims or the lookup have it, or nil.
func (p *pendingRows) pendingRecord(sender, messageID string) *SendRecord {
	k := sendKey{sender, messageID}
	if i, ok := p.claimed[k]; ok {
		r := p.claims[i]
		return &r
	}
	if r := p.known[k]; r != nil {
		c := *r
		return &c
	}
	return nil
}

// insertClaims inserts the claims not in the database yet.
func (t *Tx) insertClaims(args []any) ([]any, error) {
	p := t.pend
	rs := p.claims[p.claimsIn:]
	for len(rs) > 0 {
		k, size, n := padded(len(rs), len(qSendRows))
		args = args[:0]
		for i := range rs[:n] {
			r := &rs[i]
			args = append(args, r.Sender, r.MessageID, r.ConvID, r.ConvSeq, r.Epoch, r.CreatedMs)
		}
		args = pad(args, size, n, 6)
		if _, err := t.execNow(qSendRows[k], args...); err != nil {
			return args, err
		}
		rs = rs[n:]
	}
	p.claimsIn = len(p.claims)
	return args, nil
}

// queueMoves records FanOutTo's moves of heads (recips at their heads
// before, heads after), to go in with the transaction's other pending
// rows.
func (p *pendingRows) queueMoves(recips, heads []Head) {
	for i, r := range recips {
		p.moves = append(p.moves, headMove{r.DeviceID, r.Seq, heads[i].Seq})
	}
}

// flushHeads moves the heads waiting, each device from where its first
// move started to where its last ended, in one statement per 64 devices.
// Moves that do not follow each other, or a head that is not where the
// first move started, fail with ErrStaleHeads: a view gave out a sequence
// from a head that had moved.
func (t *Tx) flushHeads() error {
	p := t.pend
	ms := p.moves[p.movesIn:]
	if len(ms) == 0 {
		return nil
	}
	idx := make(map[string]int, len(ms))
	net := make([]headMove, 0, len(ms))
	for _, m := range ms {
		i, ok := idx[m.device]
		if !ok {
			idx[m.device] = len(net)
			net = append(net, m)
			continue
		}
		if net[i].to != m.from {
			return fmt.Errorf("device %s moved to %d, then from %d: %w", m.device, net[i].to, m.from, ErrStaleHeads)
		}
		net[i].to = m.to
	}
	args := make([]any, 0, 3*maxRowsPerInsert)
	for len(net) > 0 {
		k, size, n := padded(len(net), len(qMoveHeads))
		args = args[:0]
		for _, m := range net[:n] {
			args = append(args, m.device, m.from, m.to)
		}
		args = pad(args, size, n, 3)
		res, err := t.execNow(qMoveHeads[k], args...)
		if err != nil {
			return err
		}
		if got, err := res.RowsAffected(); err != nil || got != int64(n) {
			return fmt.Errorf("moved %d heads of %d (%v): %w", got, n, err, ErrStaleHeads)
		}
		net = net[n:]
	}
	p.movesIn = len(p.moves)
	return nil
}
