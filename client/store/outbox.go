package store

import (
	"bytes"
	"fmt"
	"time"
)

// OutboxItem is one message waiting to be sent. An item starts with its
// plaintext only; once it is encrypted, Payload holds the exact request
// bytes to send (and resend, under the same ID) and Epoch the epoch they
// were produced in. The group state advanced by the encryption is written
// in the same transaction, so a crash never loses or re-encrypts it.
type OutboxItem struct {
	Seq          uint64 `json:"seq"` // local send order, assigned by AddOutbox
	ID           string `json:"id"`  // message id, unique per device, reused on every retry
	Conversation string `json:"conversation,omitempty"`
	To           string `json:"to,omitempty"` // user@domain for a direct conversation not yet known
	Text         string `json:"text"`
	// Control is a group control message (client-defined encoding) sent
	// instead of Text.
	Control []byte `json:"control,omitempty"`
	// Media is the file a media message refers to, sent with Text as caption.
	Media   *MediaRef `json:"media,omitempty"`
	Payload []byte    `json:"payload,omitempty"` // encoded send request, once encrypted
	Epoch   uint64    `json:"epoch,omitempty"`
	Created time.Time `json:"created"`
	// Body is a ready plaintext (client-defined encoding: a receipt or a
	// settings message) sent instead of Text; it never enters history.
	Body []byte `json:"body,omitempty"`
	// Recipients are the other users of the conversation when the item
	// was encrypted (kept with the message in history).
	Recipients []string `json:"recipients,omitempty"`
	// Attempts counts the sends that failed retryably, LastError is the
	// reason of the last one (shown by `chat outbox list`).
	Attempts  int    `json:"attempts,omitempty"`
	LastError string `json:"last_error,omitempty"`
	// Failed holds the reason of a non-retryable refusal; a failed item is
	// kept for the user to see, and sent again only when retried
	// (RetryOutbox).
	Failed string `json:"failed,omitempty"`
	// Queue is the send queue the item is in: its conversation, or "to/"
	// and the user for a direct conversation not known when it was queued.
	// Set by AddOutbox and never changed.
	Queue string `json:"queue,omitempty"`
}

// SendQueue is the send queue of the item: its Queue, or for an item
// stored before queues existed, what AddOutbox would have set.
func (it OutboxItem) SendQueue() string { return queueOf(it) }

func queueOf(it OutboxItem) string {
	switch {
	case it.Queue != "":
		return it.Queue
	case it.Conversation != "":
		return it.Conversation
	}
	return "to/" + it.To
}

// queueKey is an item's key in the queue index (bOutQueues): its queue, a
// zero byte and its Seq, so that a queue's items are together in send
// order. Only items not marked failed are in the index.
func queueKey(it OutboxItem) []byte {
	k := append([]byte(queueOf(it)), 0)
	return append(k, u64key(it.Seq)...)
}

// AddOutbox appends an item and returns it with its Seq set. The ID must be
// new: a second item with the same ID is refused.
func (t *Tx) AddOutbox(it OutboxItem) (OutboxItem, error) {
	if it.ID == "" || (it.Conversation == "" && it.To == "") {
		return it, fmt.Errorf("store: outbox item needs an id and a conversation or recipient")
	}
	ids := t.bucket(bOutIDs)
	if ids.Get([]byte(it.ID)) != nil {
		return it, fmt.Errorf("store: outbox already holds message %s", it.ID)
	}
	b := t.bucket(bOutbox)
	seq, err := b.NextSequence()
	if err != nil {
		return it, fmt.Errorf("store: outbox sequence: %w", err)
	}
	it.Seq, it.Queue = seq, queueOf(it)
	if err := t.putRecord(b, u64key(seq), it); err != nil {
		return it, err
	}
	if it.Failed == "" {
		if err := t.bucket(bOutQueues).Put(queueKey(it), nil); err != nil {
			return it, err
		}
	}
	return it, ids.Put([]byte(it.ID), u64key(seq))
}

// UpdateOutbox replaces an existing item (matched by Seq and ID).
func (t *Tx) UpdateOutbox(it OutboxItem) error {
	cur, err := t.OutboxItem(it.ID)
	if err != nil {
		return err
	}
	if cur.Seq != it.Seq {
		return fmt.Errorf("store: outbox item %s has seq %d, not %d", it.ID, cur.Seq, it.Seq)
	}
	it.Queue = queueOf(cur)
	q := t.bucket(bOutQueues)
	switch {
	case cur.Failed == "" && it.Failed != "":
		if err := q.Delete(queueKey(it)); err != nil {
			return err
		}
	case cur.Failed != "" && it.Failed == "":
		if err := q.Put(queueKey(it), nil); err != nil {
			return err
		}
	}
	return t.putRecord(t.bucket(bOutbox), u64key(it.Seq), it)
}

// OutboxItem returns the item with message id id, or ErrNotFound.
func (t *Tx) OutboxItem(id string) (OutboxItem, error) {
	var it OutboxItem
	k := t.bucket(bOutIDs).Get([]byte(id))
	if k == nil {
		return it, ErrNotFound
	}
	err := t.getRecord(t.bucket(bOutbox), k, &it)
	return it, err
}

// DeleteOutbox removes the item with message id id (sent, or given up).
func (t *Tx) DeleteOutbox(id string) error {
	ids := t.bucket(bOutIDs)
	k := ids.Get([]byte(id))
	if k == nil {
		return ErrNotFound
	}
	k = cloneBytes(k)
	var it OutboxItem
	if err := t.getRecord(t.bucket(bOutbox), k, &it); err != nil {
		return err
	}
	if err := t.bucket(bOutQueues).Delete(queueKey(it)); err != nil {
		return err
	}
	if err := t.bucket(bOutbox).Delete(k); err != nil {
		return err
	}
	return ids.Delete([]byte(id))
}

// OutboxQueueSealed reports whether it, an item added in this
// transaction, is the last item not marked failed in its send queue and
// the one before it there, if any, is sealed (holds its payload). It
// reads one item, however long the queue is.
func (t *Tx) OutboxQueueSealed(it OutboxItem) (bool, error) {
	prefix := append([]byte(queueOf(it)), 0)
	c := t.bucket(bOutQueues).Cursor()
	k, _ := c.Seek(queueKey(it))
	if k == nil || !bytes.Equal(k, queueKey(it)) {
		return false, nil // not indexed
	}
	if k, _ := c.Next(); k != nil && bytes.HasPrefix(k, prefix) {
		return false, nil // not the last
	}
	c.Seek(queueKey(it))
	k, _ = c.Prev()
	if k == nil || !bytes.HasPrefix(k, prefix) {
		return true, nil // the only one
	}
	if len(k) != len(prefix)+8 {
		return false, fmt.Errorf("store: corrupt outbox queue key %q", k)
	}
	var before OutboxItem
	if err := t.getRecord(t.bucket(bOutbox), k[len(prefix):], &before); err != nil {
		return false, err
	}
	return before.Payload != nil, nil
}

// OutboxHeads returns the oldest item not marked failed of every send
// queue, in queue order (not send order). It reads one index entry and one
// item per queue, however long the queues are.
func (t *Tx) OutboxHeads() ([]OutboxItem, error) { return t.OutboxHeadsSkipping(nil) }

// OutboxHeadsSkipping is OutboxHeads reading past the items for which
// skip (if not nil) reports true: such an item is not a queue's head, the
// next one is.
func (t *Tx) OutboxHeadsSkipping(skip func(id string) bool) ([]OutboxItem, error) {
	var out []OutboxItem
	b := t.bucket(bOutbox)
	c := t.bucket(bOutQueues).Cursor()
	var queue []byte // the queue whose head was found: skip to its end
	for k, _ := c.First(); k != nil; {
		if len(k) < 9 || k[len(k)-9] != 0 {
			return out, fmt.Errorf("store: corrupt outbox queue key %q", k)
		}
		var it OutboxItem
		if err := t.getRecord(b, k[len(k)-8:], &it); err != nil {
			return out, err
		}
		if skip != nil && skip(it.ID) {
			k, _ = c.Next()
			continue
		}
		out = append(out, it)
		queue = append(queue[:0], k[:len(k)-9]...)
		k, _ = c.Seek(append(queue, 1)) // past this queue's entries
	}
	return out, nil
}

// indexOutbox fills the queue index from the outbox (a store written
// before the index existed).
func indexOutbox(t *Tx) error {
	items, err := t.PendingOutbox(0)
	if err != nil {
		return err
	}
	q := t.bucket(bOutQueues)
	for _, it := range items {
		if err := q.Put(queueKey(it), nil); err != nil {
			return err
		}
	}
	return nil
}

// Outbox returns every item in send order, failed ones included.
func (t *Tx) Outbox() ([]OutboxItem, error) {
	var out []OutboxItem
	err := t.bucket(bOutbox).ForEach(func(k, v []byte) error {
		var it OutboxItem
		if err := t.getRecord(t.bucket(bOutbox), k, &it); err != nil {
			return err
		}
		out = append(out, it)
		return nil
	})
	return out, err
}

// PendingOutbox returns up to max items not marked failed, in send order
// (all of them if max <= 0), reading no further than it needs.
func (t *Tx) PendingOutbox(max int) ([]OutboxItem, error) {
	var out []OutboxItem
	b := t.bucket(bOutbox)
	c := b.Cursor()
	for k, _ := c.First(); k != nil && (max <= 0 || len(out) < max); k, _ = c.Next() {
		var it OutboxItem
		if err := t.getRecord(b, k, &it); err != nil {
			return out, err
		}
		if it.Failed == "" {
			out = append(out, it)
		}
	}
	return out, nil
}
