//go:build js

package store

import (
	"fmt"
	"sync"
	"time"
)

// The browser's store: the record tree of memkv.go, loaded from IndexedDB
// when the profile opens and written back by every Update before it returns
// (one IndexedDB transaction with strict durability per Update). It serves
// one page's worker: IndexedDB is per origin, and the web client runs one
// worker per profile.

// FileName is the name of the profile's IndexedDB object store.
const FileName = "records"

// Store is a profile store in IndexedDB.
type Store struct {
	name string
	idb  persister // IndexedDB (idb_js.go)

	wmu sync.Mutex // one Update at a time, held until its changes are in IndexedDB
	db  *memDB

	mu         sync.Mutex
	cond       *sync.Cond // signalled when a commit ends
	committing bool       // an Update's changes are being written: readers wait
	sealer     *sealer
	later      laterWrites
}

// Options are how a profile is opened.
type Options struct {
	// Passphrase unlocks an encrypted profile, or encrypts a new one
	// (crypt.go). Empty: the profile must not be encrypted.
	Passphrase []byte
	// Keyring, without a Passphrase, opens a profile whose key is kept in
	// a keyring (see the bbolt store's Options); the web client has none yet.
	Keyring Keyring
}

// Open opens the profile called dir (the IndexedDB database name).
func Open(dir string, timeout time.Duration) (*Store, error) {
	return OpenWith(dir, timeout, Options{})
}

// OpenWith is Open with options (see the bbolt store's OpenWith).
func OpenWith(dir string, timeout time.Duration, opts Options) (*Store, error) {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	d, recs, err := openPersister(dir, timeout)
	if err != nil {
		return nil, err
	}
	db := newMemDB()
	for _, r := range recs {
		if err := db.load(r.key, r.val); err != nil {
			return nil, fmt.Errorf("store: profile %s: %w", dir, err)
		}
	}
	s := &Store{name: dir, idb: d, db: db}
	s.cond = sync.NewCond(&s.mu)
	err = s.update(func(t *Tx) error {
		if err := createBuckets(t); err != nil {
			return err
		}
		sl, err := unlock(t, opts.Passphrase, opts.Keyring)
		if err != nil {
			return err
		}
		t.s, s.sealer = sl, sl
		if err := migrateLayout(t); err != nil {
			return err
		}
		if t.bucket(bOutQueues) == nil { // as the bbolt store: (re)build the queue index
			if _, err := t.tx.CreateBucket(bOutQueues); err != nil {
				return fmt.Errorf("store: create buckets: %w", err)
			}
			return indexOutbox(t)
		}
		return nil
	}, false)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// persister keeps the records of one profile: IndexedDB in the browser
// (idb_js.go). The store's tests run under GOOS=js in Node.js, which has
// no IndexedDB, with a Go fake of it (store_js_test.go).
type persister interface {
	write(ops []kvOp) error // all of ops, durably, or none
	wipe(name string) error // delete the profile
}

// openPersister opens the profile name's records and reads them all.
var openPersister = func(name string, timeout time.Duration) (persister, []idbRecord, error) {
	d, recs, err := openIDB(name, timeout)
	if err != nil {
		return nil, nil, err
	}
	return d, recs, nil
}

// Close waits for a running Update. The Store stays usable.
func (s *Store) Close() error {
	err := s.WriteLater()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return err
}

// Path names the profile's database.
func (s *Store) Path() string { return "indexeddb:" + s.name }

// Compact has nothing to do: IndexedDB reclaims deleted records itself.
func (s *Store) Compact() error { return nil }

// Update runs fn in one read-write transaction. Its changes are in
// IndexedDB (a strict-durability transaction that completed) when it
// returns nil, and discarded otherwise.
func (s *Store) Update(fn func(*Tx) error) error { return s.update(fn, true) }

func (s *Store) updateTx(fn func(*Tx) error, check bool) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	sl := s.sealer
	s.mu.Unlock()
	keys, fns := s.later.take()
	err := s.db.update(func(tx *memTx) error {
		if check {
			if err := lockedElsewhere(tx, sl); err != nil {
				return err
			}
		}
		t := &Tx{tx: tx, s: sl}
		if err := runLater(t, keys, fns); err != nil {
			return err
		}
		return fn(t)
	}, func(ops []kvOp) error {
		s.mu.Lock()
		s.committing = true
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			s.committing = false
			s.cond.Broadcast()
			s.mu.Unlock()
		}()
		if err := s.idb.write(ops); err != nil {
			return fmt.Errorf("store: profile %s: %w", s.name, err)
		}
		return nil
	})
	s.later.settle(err == nil, keys, fns)
	return err
}

// View runs fn in a read-only transaction. It waits while another Update
// writes its changes, so it never sees a change not yet stored. Writes
// put off by Later are committed first (fn then runs in that Update),
// unless an Update runs (it may be the caller's own).
func (s *Store) View(fn func(*Tx) error) error {
	if s.viewWrites() {
		return s.Update(fn)
	}
	return s.Peek(fn)
}

// Peek is View without the writes put off by Later (see the bbolt Store).
func (s *Store) Peek(fn func(*Tx) error) error {
	s.mu.Lock()
	for s.committing {
		s.cond.Wait()
	}
	sl := s.sealer
	s.mu.Unlock()
	return s.db.view(func(tx *memTx) error {
		if err := lockedElsewhere(tx, sl); err != nil {
			return err
		}
		return fn(&Tx{tx: tx, s: sl})
	})
}

// Wipe deletes the profile's database (logging out in the browser).
func (s *Store) Wipe() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.idb.wipe(s.name); err != nil {
		return err
	}
	s.db = newMemDB()
	return nil
}

// CachedAccount reports no cached account: the browser's store keeps
// none between transactions (reccache.go).
func (s *Store) CachedAccount() (Account, bool) { return Account{}, false }

// CachedAccountKey reports no cached account and key (CachedAccount).
func (s *Store) CachedAccountKey() (Account, []byte, bool) { return Account{}, nil, false }

// Peeks returns 0: the browser's store does not count its reads.
func (s *Store) Peeks() uint64 { return 0 }

// forgetPlain: the browser's store checks for an encryption in every
// transaction (see the bbolt Store's plain).
func (s *Store) forgetPlain() {}
