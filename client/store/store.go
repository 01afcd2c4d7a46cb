package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// FileName is the name of the bbolt file inside a profile folder.
const FileName = "hearth.db"

// ErrNotFound is returned when a record does not exist.
var ErrNotFound = errors.New("store: not found")

var (
	bAccount = []byte("account")
	bKeys    = []byte("keys")
	bGroups  = []byte("groups")
	bOutbox  = []byte("outbox")
	bOutIDs  = []byte("outbox-ids")
	bHistory = []byte("history")
	bSync    = []byte("sync")

	kAccount = []byte("account")
	kMailbox = []byte("mailbox-seq")
)

// Store is a profile store. It is safe for concurrent use, also by
// several processes: the bbolt file is opened (and locked) only while
// transactions run, so `hearth chat recv --follow` and `hearth chat send`
// can use one profile at the same time. Every transaction reads the state
// the previous one (of any process) committed.
type Store struct {
	path    string
	timeout time.Duration

	mu   sync.Mutex
	db   *bolt.DB // open while refs > 0
	refs int
}

// Open prepares the store in profile folder dir, creating the folder (mode
// 0700) and the file (0600) if needed. A transaction waits up to timeout
// for another process's transaction to finish.
func Open(dir string, timeout time.Duration) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create profile folder: %w", err)
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	s := &Store{path: filepath.Join(dir, FileName), timeout: timeout}
	err := s.Update(func(t *Tx) error {
		for _, b := range [][]byte{bAccount, bKeys, bGroups, bOutbox, bOutIDs, bHistory, bSync} {
			if _, err := t.tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("store: create buckets: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Close releases the store. Transactions already running finish first.
func (s *Store) Close() error { return nil }

// acquire opens the file (taking its lock) unless a transaction of this
// process has it open already.
func (s *Store) acquire() (*bolt.DB, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		db, err := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: s.timeout})
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("store: profile %s stayed busy in another process for %v", filepath.Dir(s.path), s.timeout)
		} else if err != nil {
			return nil, fmt.Errorf("store: open: %w", err)
		}
		s.db = db
	}
	s.refs++
	return s.db, nil
}

// release closes the file (dropping its lock) after the last transaction.
func (s *Store) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refs--
	if s.refs == 0 {
		s.db.Close()
		s.db = nil
	}
}

// Tx is one transaction; see Update and View.
type Tx struct {
	tx *bolt.Tx
}

// Update runs fn in one read-write transaction. Its changes become durable
// (fsynced) together when fn returns nil, and are discarded otherwise.
func (s *Store) Update(fn func(*Tx) error) error {
	db, err := s.acquire()
	if err != nil {
		return err
	}
	defer s.release()
	return db.Update(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// View runs fn in a read-only transaction. fn must not call write methods.
func (s *Store) View(fn func(*Tx) error) error {
	db, err := s.acquire()
	if err != nil {
		return err
	}
	defer s.release()
	return db.View(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

func u64key(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func getJSON(b *bolt.Bucket, k []byte, v any) error {
	raw := b.Get(k)
	if raw == nil {
		return ErrNotFound
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("store: corrupt record %q: %w", k, err)
	}
	return nil
}

func putJSON(b *bolt.Bucket, k []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: encode %q: %w", k, err)
	}
	return b.Put(k, raw)
}

// cloneBytes copies a value read from bbolt, which is valid only inside its transaction.
func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}
