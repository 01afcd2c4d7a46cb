package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

// Store is an open profile store. It is safe for concurrent use.
type Store struct {
	db *bolt.DB
}

// Open opens (creating if needed) the store in profile folder dir. The
// folder is created with mode 0700 and the file with 0600. Only one process
// may hold a profile open at a time; Open waits up to timeout for another
// process to release it.
func Open(dir string, timeout time.Duration) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create profile folder: %w", err)
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("store: profile %s is in use by another process", dir)
		}
		return nil, fmt.Errorf("store: open: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bAccount, bKeys, bGroups, bOutbox, bOutIDs, bHistory, bSync} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: create buckets: %w", err)
	}
	return &Store{db: db}, nil
}

// Close closes the store.
func (s *Store) Close() error { return s.db.Close() }

// Tx is one read-write transaction; see Update.
type Tx struct {
	tx *bolt.Tx
}

// Update runs fn in one read-write transaction. Its changes become durable
// (fsynced) together when fn returns nil, and are discarded otherwise.
func (s *Store) Update(fn func(*Tx) error) error {
	return s.db.Update(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// View runs fn in a read-only transaction. fn must not call write methods.
func (s *Store) View(fn func(*Tx) error) error {
	return s.db.View(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
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
