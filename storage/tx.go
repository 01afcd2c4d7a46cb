package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/mattn/go-sqlite3"
)

// Tx is one unit of work: a request inside the writer's group transaction
// (Write) or a read-only snapshot (Read). Its methods are the queries.
type Tx struct {
	ctx   context.Context
	tx    *sql.Tx
	db    *DB
	write bool
	stmts map[string]*sql.Stmt // bound to tx; closed when tx ends
	// missed lists the queries prepared in this transaction because the
	// pool had not cached them yet; they are learned after it ends.
	missed *[]string
	pend   *pendingRows // the writer's mailbox rows not inserted yet; nil in a read
}

// Context returns the context queries run under.
func (t *Tx) Context() context.Context { return t.ctx }

// prep returns query's prepared statement bound to this transaction.
func (t *Tx) prep(query string) (*sql.Stmt, error) {
	if s, ok := t.stmts[query]; ok {
		return s, nil
	}
	var ts *sql.Stmt
	if cached := t.db.stmtCache(t.write).get(query); cached != nil {
		ts = t.tx.StmtContext(t.ctx, cached)
	} else {
		var err error
		if ts, err = t.tx.PrepareContext(t.ctx, query); err != nil {
			return nil, fmt.Errorf("prepare: %w", err)
		}
		*t.missed = append(*t.missed, query)
	}
	if t.stmts == nil {
		t.stmts = map[string]*sql.Stmt{}
	}
	t.stmts[query] = ts
	return ts, nil
}

func (t *Tx) closeStmts() {
	for _, s := range t.stmts {
		s.Close()
	}
	t.stmts = nil
}

// count counts a statement run by the writer (WriteStatements) and
// empties the writer's send views unless query leaves them right
// (sendViews).
func (t *Tx) count(query string) {
	if t.write {
		t.db.stats.statements.Add(1)
		t.db.views.forgetAfter(query)
	}
}

func (t *Tx) exec(query string, args ...any) (sql.Result, error) {
	if err := t.beforeStmt(query); err != nil {
		return nil, err
	}
	return t.execNow(query, args...)
}

// execNow runs a statement without inserting pending rows first.
func (t *Tx) execNow(query string, args ...any) (sql.Result, error) {
	t.count(query)
	s, err := t.prep(query)
	if err != nil {
		return nil, err
	}
	return s.ExecContext(t.ctx, args...)
}

func (t *Tx) query(query string, args ...any) (*sql.Rows, error) {
	if err := t.beforeStmt(query); err != nil {
		return nil, err
	}
	t.count(query)
	s, err := t.prep(query)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(t.ctx, args...)
}

// row runs a single-row query; sql.ErrNoRows becomes ErrNotFound.
func (t *Tx) row(query string, args []any, dest ...any) error {
	if err := t.beforeStmt(query); err != nil {
		return err
	}
	t.count(query)
	s, err := t.prep(query)
	if err != nil {
		return err
	}
	if err := s.QueryRowContext(t.ctx, args...).Scan(dest...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		return err
	}
	return nil
}

// affected returns ErrNotFound when res changed no row.
func affected(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// wrap adds the operation name to err once; sentinel errors stay testable
// with errors.Is.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", op, err)
}

// isUnique reports whether err is a UNIQUE or PRIMARY KEY violation.
func isUnique(err error) bool {
	var se sqlite3.Error
	if !errors.As(err, &se) {
		return false
	}
	return se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey
}
