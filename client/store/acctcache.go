package store

import "sync"

// acctCache keeps the decoded account record between transactions: the
// client reads it several times per message (its own address, tokens) and
// it changes only at login, token refresh and activation.
//
// Transactions are snapshots, so an entry is tied to transaction ids
// (bbolt's: a read transaction has the id of the last commit it sees, a
// write transaction the next one). An entry decoded by a transaction with
// id at is used by a transaction with id id only when no transaction that
// wrote the account has an id above at and not above id: that is, when
// both at and id are at least written, the id of the last transaction
// that wrote the account (counted when it writes, committed or not). A
// write transaction that fails drops the entry (its id is taken again by
// the next one). Opening the file drops it too: another process may have
// written the account meanwhile.
type acctCache struct {
	mu      sync.Mutex
	ok      bool
	a       Account
	at      int // id of the transaction that decoded a
	written int // id of the last transaction that wrote the account
}

// get returns the cached account if a transaction with id id sees it.
func (c *acctCache) get(id int) (Account, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ok || c.at < c.written || id < c.written {
		return Account{}, false
	}
	return c.a, true
}

// put keeps a, decoded by a transaction with id id, if later transactions
// may use it.
func (c *acctCache) put(id int, a Account) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id >= c.written {
		c.ok, c.a, c.at = true, a, id
	}
}

// wrote records that the transaction with id id changed the account.
func (c *acctCache) wrote(id int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ok, c.a = false, Account{}
	c.written = max(c.written, id)
}

// failed records that the write transaction with id id did not commit:
// whatever it wrote is gone, and the next transaction takes its id.
func (c *acctCache) failed(id int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ok, c.a = false, Account{}
	if c.written >= id {
		c.written = id - 1 // every committed write has an id below id
	}
}

// reset forgets everything; only while no transaction runs (the file was
// just opened).
func (c *acctCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ok, c.a, c.at, c.written = false, Account{}, 0, 0
}
