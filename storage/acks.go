package storage

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"
)

// ackReq is a cumulative acknowledgement waiting for the writer
// (SubmitAck): the request's fn is nil.
type ackReq struct {
	device string
	upTo   uint64
}

// maxAckRows is the most devices one ack statement updates; a batch with
// more acks uses several.
const maxAckRows = 64

// qAckRows[k] updates 1<<k devices' acks in one statement and returns the
// devices it moved; the devices whose ack is beyond their head (or that
// have no mailbox) are not returned. A shorter list repeats its last row.
var qAckRows = func() []string {
	var qs []string
	for n := 1; n <= maxAckRows; n *= 2 {
		qs = append(qs, `UPDATE mailbox_state SET acked = MAX(acked, v.column2) FROM (VALUES `+
			strings.TrimSuffix(strings.Repeat("(?, ?), ", n), ", ")+
			`) AS v WHERE mailbox_state.device_id = v.column1 AND v.column2 <= mailbox_state.head RETURNING device_id`)
	}
	return qs
}()

// SubmitAck queues a device's cumulative ack like Tx.Ack in a Submit,
// and returns at once; the returned function waits for the outcome: nil
// once the ack is durable, ErrNotFound if upTo is beyond the device's
// head or it has no mailbox.
//
// Acks are cheaper than a Submit of Tx.Ack: they run without a savepoint
// each, all acks of one transaction in one statement after its other
// requests (per device the highest), and a transaction of acks alone
// waits up to Options.AckDelay for another request to share its commit.
// An ack therefore becomes visible to later transactions, not to the
// requests that share its own.
func (db *DB) SubmitAck(ctx context.Context, deviceID string, upTo uint64) (wait func() error) {
	return db.submit(&writeReq{ctx: ctx, ack: ackReq{device: deviceID, upTo: upTo}, done: make(chan error, 1)})
}

// onlyAcks reports whether every request of batch is an ack.
func onlyAcks(batch []*writeReq) bool {
	for _, r := range batch {
		if r.fn != nil {
			return false
		}
	}
	return true
}

// waitBesideAcks waits up to AckDelay for a request other than an ack to
// join a batch of acks, so that acks alone do not cost a commit (and an
// fsync) of their own while other writes come anyway. It returns at once
// when such a request arrives (with whatever else is queued), when the
// batch is full, or when the database closes.
func (db *DB) waitBesideAcks(batch []*writeReq, t *time.Timer) []*writeReq {
	t.Reset(db.opts.AckDelay)
	defer t.Stop()
	for len(batch) < db.opts.MaxBatch {
		select {
		case r := <-db.reqs:
			batch = append(batch, r)
			if r.fn != nil {
				return db.fill(batch)
			}
		case <-t.C:
			return batch
		case <-db.closing:
			return batch // the writer drains the rest
		}
	}
	return batch
}

// applyAcks applies the acks batch[i] for i in idx inside the writer's
// transaction and sets their outcome in errs. Per device only its highest
// ack is written; when that one is refused (beyond the head), the
// device's acks are tried one by one so that each gets its own answer.
func (db *DB) applyAcks(t *Tx, batch []*writeReq, idx []int, errs []error) {
	const op = "storage.Ack"
	type dev struct {
		upTo uint64
		reqs []int
	}
	devs := make(map[string]*dev, len(idx))
	order := make([]string, 0, len(idx))
	for _, i := range idx {
		a := batch[i].ack
		if a.upTo > math.MaxInt64 {
			errs[i] = wrap(op, ErrNotFound) // beyond any head
			continue
		}
		d := devs[a.device]
		if d == nil {
			d = &dev{}
			devs[a.device] = d
			order = append(order, a.device)
		}
		d.upTo = max(d.upTo, a.upTo)
		d.reqs = append(d.reqs, i)
	}
	args := make([]any, 0, 2*maxAckRows)
	for len(order) > 0 {
		chunk := order[:min(len(order), maxAckRows)]
		order = order[len(chunk):]
		k := 0
		for 1<<k < len(chunk) {
			k++
		}
		args = args[:0]
		for j := range 1 << k {
			name := chunk[min(j, len(chunk)-1)]
			args = append(args, name, int64(devs[name].upTo))
		}
		moved, err := db.ackRows(t, qAckRows[k], args, len(chunk))
		for _, name := range chunk {
			d := devs[name]
			switch {
			case err != nil:
				for _, i := range d.reqs {
					errs[i] = wrap(op, err)
				}
			case moved[name]:
				for _, i := range d.reqs {
					errs[i] = nil
				}
			default:
				for _, i := range d.reqs {
					errs[i] = wrap(op, affected(t.exec(qAck, int64(batch[i].ack.upTo), name)))
				}
			}
		}
	}
}

// ackRows runs one multi-row ack statement and returns the devices it
// moved. A failed statement changes nothing (SQLite rolls back the
// statement alone), so the transaction goes on without these acks.
func (db *DB) ackRows(t *Tx, query string, args []any, n int) (map[string]bool, error) {
	rows, err := t.query(query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	moved := make(map[string]bool, n)
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("scan: %w", err)
		}
		moved[name] = true
	}
	return moved, rows.Err()
}
