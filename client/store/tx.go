package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrNotFound is returned when a record does not exist.
var ErrNotFound = errors.New("store: not found")

var (
	bAccount = []byte("account")
	bKeys    = []byte("keys")
	bOutbox  = []byte("outbox")
	bOutIDs  = []byte("outbox-ids")
	// bOutQueues indexes the pending outbox items by send queue (queueKey).
	bOutQueues = []byte("outbox-queues")
	bSync      = []byte("sync")
	// bMailbox holds the last processed mailbox sequence alone: a bucket
	// that small lives inside the root page, which every commit rewrites
	// anyway (the sync bucket has a page of its own).
	bMailbox = []byte("mailbox")

	kAccount = []byte("account")
	kMailbox = []byte("mailbox-seq")
)

// Tx is one transaction; see Update and View.
type Tx struct {
	tx *kvTx
	s  *sealer // nil: values are stored as they are
	// acct and sig cache the decoded account and the signature key
	// across transactions (reccache.go); nil: none (the browser's store,
	// whose transactions have no ids).
	acct *recCache[Account]
	sig  *recCache[[]byte]
	// keys notes a check of the keys bucket (KeysChecked).
	keys *recCache[struct{}]
	// trees remembers the trees each conversation's bucket holds
	// (treesmemo.go); nil: always sync them.
	trees *treesMemo
	id    int // bbolt's transaction id, for the caches
	// ro marks a read-only bbolt transaction (Peek), whose top-level
	// buckets are kept in tops once opened: bbolt caches a transaction's
	// buckets only when it writes, and opening one seeks the root and
	// copies an inline bucket's bytes when they are not aligned (a Peek
	// opens the sync bucket once per named value it reads).
	ro   bool
	tops [8]topBucket
	ntop int
}

type topBucket struct {
	name []byte
	b    *kvBucket
}

// bucket returns the top-level bucket name (nil if there is none), from
// tops in a read-only transaction, where no bucket is created or deleted.
func (t *Tx) bucket(name []byte) *kvBucket {
	if !t.ro {
		return t.tx.Bucket(name)
	}
	for i := range t.ntop {
		if bytes.Equal(t.tops[i].name, name) {
			return t.tops[i].b
		}
	}
	b := t.tx.Bucket(name)
	if t.ntop < len(t.tops) {
		t.tops[t.ntop] = topBucket{name, b}
		t.ntop++
	}
	return b
}

func u64key(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func (t *Tx) getRecord(b *kvBucket, k []byte, v any) error {
	raw, err := t.getShared(b, k)
	if err != nil {
		return err
	}
	if raw == nil {
		return ErrNotFound
	}
	if err := decodeRecord(raw, v); err != nil {
		return fmt.Errorf("store: corrupt record %q: %w", k, err)
	}
	return nil
}

func (t *Tx) putRecord(b *kvBucket, k []byte, v any) error {
	raw, err := encodeRecord(v)
	if err != nil {
		return fmt.Errorf("store: encode %q: %w", k, err)
	}
	return t.put(b, k, raw)
}

// cloneBytes copies a value read from bbolt, which is valid only inside its transaction.
func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}
