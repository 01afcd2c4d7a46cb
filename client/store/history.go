package store

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

// ErrSeqTaken is wrapped by AddHistory when the conversation holds another
// message at the same seq.
var ErrSeqTaken = errors.New("store: another message holds that seq")

// Message is one chat message as this device holds it. The JSON field names
// are those `hearth chat recv --json` and `history --json` print.
type Message struct {
	ID           string    `json:"id"`
	Conversation string    `json:"conversation"`
	From         string    `json:"from"` // user@domain
	Text         string    `json:"text"`
	SentAt       time.Time `json:"sent_at"`
	Seq          uint64    `json:"seq"` // the hub's conversation sequence
	// Event names a group change (member_added, member_removed, renamed,
	// promoted, demoted, left, commit_refused) or what happened to this
	// device's membership (removed, undecryptable; decision 0006); User is the user it is
	// about, Text its detail (e.g. the new name). Empty for messages.
	Event string `json:"event,omitempty"`
	User  string `json:"user,omitempty"`
	// Count and Reason describe an undecryptable event: how many
	// deliveries of the conversation could not be decrypted, and why.
	Count  int    `json:"count,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Media is the file a media message refers to (nil for text).
	Media *MediaRef `json:"media,omitempty"`
	// SentAt is the sender's own time when the message carries it (inside
	// the encrypted content); ServerTime is when the hub accepted it. For a
	// message without the sender's time, SentAt is the server's time and
	// ServerTime is nil.
	ServerTime *time.Time `json:"server_time,omitempty"`
	// Recipients are the other users of the conversation when the message
	// was sent (set on the sender's devices): the "m" of "read by n of m".
	Recipients []string `json:"recipients,omitempty"`
	// Status, DeliveredTo and ReadBy are the receipt state of a message
	// this user sent, filled in by the client when it reads history (never
	// stored): "sent", "delivered" (every recipient) or "read" (every
	// recipient), and the users it reached and was read by.
	Status      string   `json:"status,omitempty"`
	DeliveredTo []string `json:"delivered_to,omitempty"`
	ReadBy      []string `json:"read_by,omitempty"`
	// MessageIDs and Kind describe a receipt event (Event "receipt",
	// User the reader): the messages it newly covers, "delivered" or
	// "read". Receipt events pass through the inbox only, never history.
	MessageIDs []string `json:"message_ids,omitempty"`
	Kind       string   `json:"kind,omitempty"`
}

var bInbox = []byte("inbox")

// AddHistory records m in its conversation at m.Seq. Recording the same
// message again is a no-op and returns false; a different message at the
// same seq is an error.
func (t *Tx) AddHistory(m Message) (bool, error) {
	if m.Conversation == "" || m.Seq == 0 || m.ID == "" {
		return false, fmt.Errorf("store: history message needs a conversation, seq and id")
	}
	if err := validConv(m.Conversation); err != nil {
		return false, err
	}
	b := t.convBucket(m.Conversation, 0)
	k := historyKey(m.Conversation, m.Seq)
	var old Message
	switch err := t.getRecord(b, k, &old); err {
	case nil:
		if old.ID != m.ID {
			return false, fmt.Errorf("%w: conversation %s seq %d holds message %s, not %s", ErrSeqTaken, m.Conversation, m.Seq, old.ID, m.ID)
		}
		return false, nil
	case ErrNotFound:
	default:
		return false, err
	}
	return true, t.putRecord(b, k, m)
}

// historyBucket is the bucket of conv's history messages, whose keys
// start with prefix (conv's history prefix); nil when there is none.
func (t *Tx) historyBucket(conv string) (b *kvBucket, prefix []byte) {
	b = t.bucket(bConvs)
	if b == nil || validConv(conv) != nil {
		return nil, nil
	}
	return b, convPrefix(conv, kindHistory)
}

// historyRecord decodes the history message at k, a key of b found under
// prefix; ok is false past conv's history.
func (t *Tx) historyRecord(b *kvBucket, prefix, k []byte, m *Message) (ok bool, err error) {
	if k == nil || len(k) != len(prefix)+8 || !bytes.HasPrefix(k, prefix) {
		return false, nil
	}
	return true, t.getRecord(b, k, m)
}

// History returns a conversation's messages in conversation order. With
// limit > 0 only the last limit messages are returned.
func (t *Tx) History(conv string, limit int) ([]Message, error) {
	b, prefix := t.historyBucket(conv)
	if b == nil {
		return nil, nil
	}
	c := b.Cursor()
	var out []Message
	k, _ := c.Seek(stateKey(conv)) // just past the history
	if k == nil {
		k, _ = c.Last()
	} else {
		k, _ = c.Prev()
	}
	for ; limit <= 0 || len(out) < limit; k, _ = c.Prev() {
		var m Message
		ok, err := t.historyRecord(b, prefix, k, &m)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		out = append(out, m)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// EachHistory calls fn with a conversation's messages in conversation
// order, one at a time (a long history is never held whole), until fn
// returns an error, which it returns.
func (t *Tx) EachHistory(conv string, fn func(Message) error) error {
	return t.eachHistory(conv, 0, 0, fn)
}

// eachHistory is EachHistory for the messages with after < seq <= upTo
// (upTo 0: no upper bound).
func (t *Tx) eachHistory(conv string, after, upTo uint64, fn func(Message) error) error {
	b, prefix := t.historyBucket(conv)
	if b == nil {
		return nil
	}
	c := b.Cursor()
	for k, _ := c.Seek(historyKey(conv, after+1)); ; k, _ = c.Next() {
		var m Message
		ok, err := t.historyRecord(b, prefix, k, &m)
		if err != nil {
			return err
		}
		if !ok || (upTo > 0 && be64(k[len(prefix):]) > upTo) {
			return nil
		}
		if err := fn(m); err != nil {
			return err
		}
	}
}

// HistoryConversations lists the conversations that have history.
func (t *Tx) HistoryConversations() []string {
	var out []string
	t.eachConv(kindHistory, func(conv string) { out = append(out, conv) })
	return out
}

// AddInbox queues a received message for `recv` to print, in arrival order.
func (t *Tx) AddInbox(m Message) error {
	b, err := t.tx.CreateBucketIfNotExists(bInbox)
	if err != nil {
		return fmt.Errorf("store: inbox bucket: %w", err)
	}
	appending(b)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	return t.putRecord(b, u64key(seq), m)
}

// InboxEntry is a queued received message and its position.
type InboxEntry struct {
	Pos uint64
	Message
}

// Inbox returns up to max queued messages (all if max <= 0), oldest first.
func (t *Tx) Inbox(max int) ([]InboxEntry, error) { return t.InboxAfter(0, max) }

// InboxAfter is Inbox for the messages queued at positions after pos.
func (t *Tx) InboxAfter(pos uint64, max int) ([]InboxEntry, error) {
	b := t.bucket(bInbox)
	if b == nil {
		return nil, nil
	}
	var out []InboxEntry
	c := b.Cursor()
	for k, _ := c.Seek(u64key(pos + 1)); k != nil && (max <= 0 || len(out) < max); k, _ = c.Next() {
		var e InboxEntry
		if err := t.getRecord(b, k, &e.Message); err != nil {
			return nil, err
		}
		e.Pos = be64(k)
		out = append(out, e)
	}
	return out, nil
}

// DeleteInbox removes every queued message up to and including pos.
func (t *Tx) DeleteInbox(pos uint64) error {
	b := t.bucket(bInbox)
	if b == nil {
		return nil
	}
	c := b.Cursor()
	for k, _ := c.First(); k != nil && be64(k) <= pos; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// HistoryRange returns the messages of a conversation with after < seq <=
// upTo, in conversation order.
func (t *Tx) HistoryRange(conv string, after, upTo uint64) ([]Message, error) {
	if upTo <= after {
		return nil, nil
	}
	var out []Message
	err := t.eachHistory(conv, after, upTo, func(m Message) error {
		out = append(out, m)
		return nil
	})
	return out, err
}
