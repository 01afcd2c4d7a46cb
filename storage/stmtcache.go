package storage

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// maxCachedStmts bounds how many distinct queries a pool keeps prepared.
// Every query in this package is a constant, so the set is small and
// fixed; the bound only guards against a future query built from input.
const maxCachedStmts = 512

// stmtCache holds a pool's prepared statements. A *sql.Stmt prepared on a
// pool is bound lazily to each connection that runs it (Tx.StmtContext),
// prepared at most once per connection and kept for the connection's life,
// so a query costs sqlite3_prepare once per connection instead of once per
// transaction.
//
// Statements are learned: a query not yet in the cache is prepared inside
// the transaction that first runs it , and once that
// transaction has ended and its connection is back in the pool, the query
// is prepared on the pool and cached. (Preparing on the pool from inside a
// transaction could wait forever for a connection: the writer pool has one.)
type stmtCache struct {
	pool *sql.DB
	mu   sync.RWMutex
	m    map[string]*sql.Stmt
}

func newStmtCache(pool *sql.DB) *stmtCache {
	return &stmtCache{pool: pool, m: map[string]*sql.Stmt{}}
}

// get returns the cached statement for query, or nil.
func (c *stmtCache) get(query string) *sql.Stmt {
	c.mu.RLock()
	s := c.m[query]
	c.mu.RUnlock()
	return s
}

// learn prepares the queries on the pool and caches them. The caller must
// hold no connection of the pool. A query that does not prepare is left
// out: its next transaction prepares it itself and reports the error.
func (c *stmtCache) learn(ctx context.Context, queries []string) error {
	for _, q := range queries {
		c.mu.RLock()
		_, have := c.m[q]
		full := len(c.m) >= maxCachedStmts
		c.mu.RUnlock()
		if have || full {
			continue
		}
		s, err := c.pool.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
		c.mu.Lock()
		if _, have := c.m[q]; have || len(c.m) >= maxCachedStmts {
			s.Close()
		} else {
			c.m[q] = s
		}
		c.mu.Unlock()
	}
	return nil
}

// len returns how many queries are cached.
func (c *stmtCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

// close closes every cached statement.
func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, s := range c.m {
		s.Close()
		delete(c.m, q)
	}
}
