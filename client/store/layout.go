package store

import (
	"fmt"
)

// Buckets of profiles written before the conversations bucket (decision
// 0022): migrateLayout moves what they hold.
var (
	// bGroups held the MLS state of each conversation under its id.
	bGroups = []byte("groups")
	// bHistory held one nested bucket per conversation, its messages
	// keyed by seq.
	bHistory = []byte("history")
)

// layoutBuckets are the top-level buckets every profile has.
var layoutBuckets = [][]byte{bAccount, bKeys, bConvs, bTrees, bOutbox, bOutIDs, bMailbox, bSync, bCrypt}

// createBuckets creates the top-level buckets a profile lacks.
func createBuckets(t *Tx) error {
	for _, b := range layoutBuckets {
		if _, err := t.tx.CreateBucketIfNotExists(b); err != nil {
			return fmt.Errorf("store: create buckets: %w", err)
		}
	}
	return nil
}

// migrateLayout moves the group states, the history and the mailbox
// sequence of a profile in the earlier layout (buckets groups and
// history, the sequence in sync) into bConvs and bMailbox, in the
// transaction that opens the store, after its key is known (t.s): record
// keys change, and an encrypted value is sealed under its key. Old buckets
// found beside new ones were written by an older hearth after an
// earlier migration: their states replace the ones in bConvs, their
// messages are added where a seq is free, the larger mailbox sequence
// wins.
func migrateLayout(t *Tx) error {
	// The states last: the page splits of this commit then keep each
	// state on the page of its conversation's newest messages (keepTail).
	if err := migrateHistory(t); err != nil {
		return fmt.Errorf("store: move history: %w", err)
	}
	if err := migrateGroups(t); err != nil {
		return fmt.Errorf("store: move group states: %w", err)
	}
	sync := t.bucket(bSync)
	if v := sync.Get(kMailbox); v != nil {
		if seq := be64(v); len(v) == 8 && seq > t.MailboxSeq() {
			if err := t.bucket(bMailbox).Put(kMailbox, u64key(seq)); err != nil {
				return fmt.Errorf("store: move mailbox sequence: %w", err)
			}
		}
		if err := sync.Delete(kMailbox); err != nil {
			return fmt.Errorf("store: move mailbox sequence: %w", err)
		}
	}
	return nil
}

func migrateGroups(t *Tx) error {
	old := t.bucket(bGroups)
	if old == nil {
		return nil
	}
	var convs [][]byte
	old.ForEach(func(k, _ []byte) error {
		convs = append(convs, cloneBytes(k))
		return nil
	})
	for _, conv := range convs {
		if validConv(string(conv)) != nil {
			continue // no conversation has such an id: not a state
		}
		state, err := t.get(old, conv)
		if err != nil {
			return err
		}
		if state == nil {
			continue // a nested bucket: not a state
		}
		if err := t.putState(string(conv), state); err != nil {
			return err
		}
	}
	return t.tx.DeleteBucket(bGroups)
}

func migrateHistory(t *Tx) error {
	old := t.bucket(bHistory)
	if old == nil {
		return nil
	}
	var convs [][]byte
	old.ForEach(func(k, _ []byte) error {
		if old.Bucket(k) != nil {
			convs = append(convs, cloneBytes(k))
		}
		return nil
	})
	to := t.bucket(bConvs)
	for _, conv := range convs {
		if validConv(string(conv)) != nil {
			continue
		}
		hb := old.Bucket(conv)
		var seqs [][]byte
		hb.ForEach(func(k, v []byte) error {
			if len(k) == 8 && v != nil {
				seqs = append(seqs, cloneBytes(k))
			}
			return nil
		})
		appending(to)
		for _, k := range seqs {
			nk := historyKey(string(conv), be64(k))
			if to.Get(nk) != nil {
				continue
			}
			v, err := t.get(hb, k)
			if err != nil {
				return err
			}
			if err := t.put(to, nk, v); err != nil {
				return err
			}
		}
	}
	return t.tx.DeleteBucket(bHistory)
}
