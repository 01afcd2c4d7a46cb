package storage

import (
	"fmt"
	"strings"
)

// convAdvance is a conversation's new epoch and last sequence, waiting
// in the writer (AdvanceConversation without a GroupInfo).
type convAdvance struct {
	conv       string
	epoch, seq uint64
}

// qAdvanceRows[k] moves 1<<k conversations (3 parameters each).
var qAdvanceRows = func() []string {
	var qs []string
	for n := 1; n <= maxRowsPerInsert; n *= 2 {
		qs = append(qs, `UPDATE conversations SET epoch = v.column2, last_seq = v.column3 FROM (VALUES `+
			strings.TrimSuffix(strings.Repeat("(?, ?, ?), ", n), ", ")+`) AS v WHERE conversations.id = v.column1`)
	}
	return qs
}()

// queueAdvance records a conversation's advance to go in with the
// transaction's other pending rows.
func (p *pendingRows) queueAdvance(conv string, epoch, seq uint64) {
	if p.lastAdv == nil {
		p.lastAdv = map[string]int{}
	}
	p.lastAdv[conv] = len(p.advs)
	p.advs = append(p.advs, convAdvance{conv, epoch, seq})
}

// advanced sets c's epoch and last sequence to those of its latest
// advance waiting, if any: every statement that reads them and may run
// while advances wait (deferSafe) passes its conversation through here.
func (p *pendingRows) advanced(c *Conversation) {
	if p == nil || len(p.advs) == 0 {
		return
	}
	i, ok := p.lastAdv[c.ID]
	if !ok {
		return
	}
	// After a rollback the latest may be an earlier one.
	for i = min(i, len(p.advs)-1); i >= 0; i-- {
		if a := p.advs[i]; a.conv == c.ID {
			c.Epoch, c.LastSeq = a.epoch, a.seq
			return
		}
	}
}

// updateAdvances moves the conversations of advs, each to its latest
// advance, in as few statements as qAdvanceRows' sizes allow.
func (t *Tx) updateAdvances(advs []convAdvance) error {
	latest := make([]convAdvance, 0, len(advs))
	seen := make(map[string]bool, len(advs))
	for i := len(advs) - 1; i >= 0; i-- {
		if a := advs[i]; !seen[a.conv] {
			seen[a.conv] = true
			latest = append(latest, a)
		}
	}
	args := make([]any, 0, 3*min(len(latest), maxRowsPerInsert))
	for len(latest) > 0 {
		k, n := chunk(len(latest), len(qAdvanceRows))
		args = args[:0]
		for _, a := range latest[:n] {
			args = append(args, a.conv, a.epoch, a.seq)
		}
		res, err := t.execNow(qAdvanceRows[k], args...)
		if err != nil {
			return err
		}
		if m, err := res.RowsAffected(); err != nil || m != int64(n) {
			return fmt.Errorf("moved %d conversations of %d (%v)", m, n, err)
		}
		latest = latest[n:]
	}
	return nil
}
