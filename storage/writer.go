package storage

import (
	"context"
	"database/sql"
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// writeReq is one caller's unit of work waiting for the writer.
type writeReq struct {
	ctx  context.Context
	fn   func(*Tx) error // nil for an ack (SubmitAck)
	ack  ackReq
	done chan error
}

type writeStats struct {
	batches    atomic.Uint64
	requests   atomic.Uint64
	statements atomic.Uint64 // run by the writer, BEGIN and COMMIT not counted
}

// WriteStats reports how many transactions the writer committed and how
// many requests they carried; their ratio is the group-commit factor.
func (db *DB) WriteStats() (batches, requests uint64) {
	return db.stats.batches.Load(), db.stats.requests.Load()
}

// WriteStatements reports how many SQL statements the writer has run
// (queries, savepoints and acks; not BEGIN and COMMIT), committed or not:
// with WriteStats, the statements per request or per transaction.
func (db *DB) WriteStatements() uint64 { return db.stats.statements.Load() }

// Write runs fn inside the writer's transaction and returns after that
// transaction has committed (fsynced: synchronous=FULL) or failed.
//
// Concurrent Write calls are grouped into one transaction (group commit).
// Each fn runs inside its own SAVEPOINT: when fn returns an error (or
// panics), only its own changes are rolled back, the others in the group
// still commit, and Write returns fn's error unchanged. fn must not keep
// Tx after it returns and must not have effects outside the database that
// would be wrong if the commit failed: do those after Write returns nil.
//
// If ctx ends before fn starts, fn does not run. Once fn has run, Write
// waits for the commit whatever ctx says, so that a nil error always means
// durable and a non-nil one never hides a committed write from fn.
func (db *DB) Write(ctx context.Context, fn func(*Tx) error) error {
	return db.Submit(ctx, fn)()
}

// Submit queues fn like Write but returns at once; the returned function
// waits for the outcome. Requests submitted one after another from one
// goroutine run in that order (in the same or later transactions), which
// lets a caller pipeline writes without waiting for each commit.
func (db *DB) Submit(ctx context.Context, fn func(*Tx) error) (wait func() error) {
	return db.submit(&writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)})
}

func (db *DB) submit(req *writeReq) (wait func() error) {
	ctx := req.ctx
	db.closeMu.RLock()
	if db.closed {
		db.closeMu.RUnlock()
		return func() error { return ErrClosed }
	}
	select {
	case db.reqs <- req:
		db.closeMu.RUnlock()
	case <-ctx.Done():
		db.closeMu.RUnlock()
		err := ctx.Err()
		return func() error { return err }
	}
	return func() error { return <-req.done }
}

// writer is the one goroutine that writes. It takes whatever requests are
// waiting (up to MaxBatch) and commits them in one transaction. When the
// previous transaction carried several requests, it first waits up to
// CommitDelay for more (group commit under load: fewer transactions, so
// fewer fsyncs and less CPU per request; a lone caller does not wait).
// A batch of acks alone waits up to AckDelay for another request to share
// its transaction (waitBesideAcks).
func (db *DB) writer() {
	defer close(db.done)
	batch := make([]*writeReq, 0, db.opts.MaxBatch)
	var linger *time.Timer
	if db.opts.CommitDelay > 0 {
		linger = time.NewTimer(time.Hour)
		linger.Stop()
	}
	ackWait := time.NewTimer(time.Hour)
	ackWait.Stop()
	busy := false // the previous transaction carried more than one request
	for {
		select {
		case r := <-db.reqs:
			batch = append(batch[:0], r)
		case <-db.closing:
			// Close holds closeMu while closing, so no request can be
			// submitted after this point: drain what is queued, then stop.
			for {
				select {
				case r := <-db.reqs:
					db.runBatch([]*writeReq{r})
				default:
					return
				}
			}
		}
		batch = db.fill(batch)
		if onlyAcks(batch) && db.opts.AckDelay > 0 {
			batch = db.waitBesideAcks(batch, ackWait)
		} else if busy && linger != nil && len(batch) < db.opts.MaxBatch {
			linger.Reset(db.opts.CommitDelay)
		wait:
			for len(batch) < db.opts.MaxBatch {
				select {
				case r := <-db.reqs:
					batch = db.fill(append(batch, r))
				case <-linger.C:
					break wait
				case <-db.closing:
					break wait // the loop above drains the rest
				}
			}
			linger.Stop()
		}
		busy = len(batch) > 1
		db.runBatch(batch)
		clear(batch)
	}
}

// fill adds the requests already queued, up to MaxBatch.
func (db *DB) fill(batch []*writeReq) []*writeReq {
	for len(batch) < db.opts.MaxBatch {
		select {
		case r := <-db.reqs:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// runBatch executes one group commit and answers every request in it.
func (db *DB) runBatch(batch []*writeReq) {
	errs := make([]error, len(batch))
	ctx := context.Background()
	began := time.Now()
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		for _, r := range batch {
			r.done <- fmt.Errorf("storage.Write: begin: %w", err)
		}
		return
	}
	ran := 0
	// Statements bound to tx, shared by the batch and closed by
	// Commit/Rollback; queries the pool had not cached are learned after
	// it ends and before anyone is answered, so that a caller's next
	// write finds them.
	shared := &Tx{ctx: ctx, tx: tx, db: db, write: true, stmts: map[string]*sql.Stmt{}, missed: new([]string), pend: &db.pend}
	db.pend.reset()
	learn := func() {
		if len(*shared.missed) > 0 {
			if err := db.wstmts.learn(ctx, *shared.missed); err != nil {
				db.opts.Log.Warn("storage: statement not cached", "err", err)
			}
		}
	}
	abort := func(broken error) {
		// The transaction itself is unusable: nothing in it commits.
		tx.Rollback()
		db.views.clear()
		learn()
		db.opts.Log.Error("storage: write batch aborted", "err", broken)
		for _, r := range batch {
			r.done <- fmt.Errorf("storage.Write: %w", broken)
		}
	}
	var acks []int // indexes of the acks in batch, applied after the rest
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		ran++
		if r.fn == nil {
			acks = append(acks, i)
			continue
		}
		ferr, broken := db.runOne(shared, r)
		errs[i] = ferr
		if broken != nil {
			abort(broken)
			return
		}
	}
	if err := shared.flush(); err != nil {
		abort(err)
		return
	}
	if len(acks) > 0 {
		db.applyAcks(shared, batch, acks, errs)
	}
	committing := time.Now()
	err = tx.Commit()
	if err == nil && db.opts.Observer != nil {
		end := time.Now()
		db.opts.Observer.ObserveCommit(ran, end.Sub(began), end.Sub(committing))
	}
	learn()
	if err != nil {
		db.views.clear() // what they learnt in the transaction is gone
		db.opts.Log.Error("storage: commit failed", "err", err, "requests", len(batch))
		for _, r := range batch {
			r.done <- fmt.Errorf("storage.Write: commit: %w", err)
		}
		return
	}
	db.stats.batches.Add(1)
	db.stats.requests.Add(uint64(ran))
	for i, r := range batch {
		r.done <- errs[i]
	}
	if db.ckpt != nil {
		db.ckpt.afterCommit(db.w)
	}
}

// runOne runs one request inside a savepoint. It returns fn's error, and a
// second error when the savepoint machinery failed (the transaction is
// then broken and the whole batch must be rolled back).
func (db *DB) runOne(shared *Tx, r *writeReq) (ferr, broken error) {
	if _, err := shared.exec(stmtSavepoint); err != nil {
		return nil, fmt.Errorf("savepoint: %w", err)
	}
	shared.pend.begin()
	t := *shared // each request its own Tx value (fn must not keep it), same statements
	ferr = callSafe(&t, r.fn)
	if ferr != nil {
		db.views.clear() // they may hold what the rollback undoes
		if _, err := shared.exec(stmtRollbackTo); err != nil {
			return ferr, fmt.Errorf("rollback to savepoint: %w", err)
		}
		shared.pend.rollback()
	}
	if _, err := shared.exec(stmtRelease); err != nil {
		return ferr, fmt.Errorf("release savepoint: %w", err)
	}
	shared.pend.release()
	return ferr, nil
}

// callSafe turns a panic in fn into an error so one bad request cannot take
// the writer (and every other caller) down.
func callSafe(t *Tx, fn func(*Tx) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("storage.Write: panic in write function: %v\n%s", p, debug.Stack())
		}
	}()
	return fn(t)
}
