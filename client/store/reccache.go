package store

import "sync"

// recCache keeps one decoded record between transactions: the account
// (the client reads it several times per message: its own address,
// tokens; it changes only at login, token refresh and activation) and
// the device's signature key (read for every message sent and every batch
// received; written at login).
//
// Transactions are snapshots, so an entry is tied to transaction ids
// (bbolt's: a read transaction has the id of the last commit it sees, a
// write transaction the next one). An entry decoded by a transaction with
// id at is used by a transaction with id id only when no transaction that
// wrote the account has an id above at and not above id: that is, when
// both at and id are at least written, the id of the last transaction
// that wrote the record (counted when it writes, committed or not). A
// write transaction that fails drops the entry (its id is taken again by
// the next one). Opening the file drops it too: another process may have
// written the record meanwhile.
type recCache[T any] struct {
	mu      sync.Mutex
	ok      bool
	v       T
	at      int // id of the transaction that decoded v
	written int // id of the last transaction that wrote the record
}

// get returns the cached record if a transaction with id id sees it.
func (c *recCache[T]) get(id int) (T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ok || c.at < c.written || id < c.written {
		var zero T
		return zero, false
	}
	return c.v, true
}

// put keeps v, decoded by a transaction with id id, if later transactions
// may use it.
func (c *recCache[T]) put(id int, v T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id >= c.written {
		c.ok, c.v, c.at = true, v, id
	}
}

// wrote records that the transaction with id id changed the record.
func (c *recCache[T]) wrote(id int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero T
	c.ok, c.v = false, zero
	c.written = max(c.written, id)
}

// failed records that the write transaction with id id did not commit:
// whatever it wrote is gone, and the next transaction takes its id.
func (c *recCache[T]) failed(id int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero T
	c.ok, c.v = false, zero
	if c.written >= id {
		c.written = id - 1 // every committed write has an id below id
	}
}

// reset forgets everything; only while no transaction runs (the file was
// just opened).
func (c *recCache[T]) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero T
	c.ok, c.v, c.at, c.written = false, zero, 0, 0
}
