//go:build !js

package store

import "bytes"

// Reading the cached records without a transaction. While this process
// holds the file open it also holds its lock, so no other process
// commits to it, and every commit of this process passes through
// updateTx: the newest transaction this process saw (Store.seen) is the
// file's current state, and a cache entry valid at that transaction is
// what a Peek would read. A Peek costs a read transaction (and the
// shared-file bookkeeping around it); the client asks for its account
// and its signature key several times per message.

// saw records that the transaction with id id committed or read.
func (s *Store) saw(id int) {
	s.mu.Lock()
	s.seen = max(s.seen, id)
	s.mu.Unlock()
}

// cachedAtLocked returns the transaction id the caches can be read at without
// a transaction, or 0 when they cannot (the file is closed or was just
// opened, or it is damaged). Called with s.mu held.
func (s *Store) cachedAtLocked() int {
	if s.db == nil || s.damaged != nil {
		return 0
	}
	return s.seen
}

// CachedAccount returns the account as a Peek would read it, if the
// store holds it decoded (reccache.go); ok false: read it in a
// transaction (Tx.Account).
func (s *Store) CachedAccount() (a Account, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if at := s.cachedAtLocked(); at > 0 {
		return s.acct.get(at)
	}
	return a, false
}

// CachedAccountKey is CachedAccount with the signature key (a copy),
// both as one Peek would read them.
func (s *Store) CachedAccountKey() (a Account, sig []byte, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := s.cachedAtLocked()
	if at == 0 {
		return a, nil, false
	}
	if a, ok = s.acct.get(at); !ok {
		return a, nil, false
	}
	if sig, ok = s.sig.get(at); !ok {
		return a, nil, false
	}
	return a, bytes.Clone(sig), true
}

// Peeks returns how many read transactions this Store ran (Peek, and
// View when it commits nothing first). Benchmarks count them per message.
func (s *Store) Peeks() uint64 { return s.peeks.Load() }
