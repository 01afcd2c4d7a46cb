package store

import (
	"bytes"
	"fmt"
)

// The history and the MLS state of every conversation share one bucket,
// bConvs, one key range per conversation:
//
//	conv 0x00 seq   a history message (seq: 8 bytes, big-endian)
//	conv 0x01       the conversation's MLS state (trees apart: trees.go)
//
// A message sent or received adds a history message and saves the group
// state in one commit. With both at the end of the conversation's range
// they usually share one leaf page, and the bucket is a top-level one:
// such a commit rewrites that leaf and its branch pages, where a nested
// bucket per conversation and a groups bucket of their own rewrote the
// history bucket's page, the conversation's pages and the groups page
// (decision 0022). Conversation ids hold no byte below 0x02 (validConv),
// so that one conversation's keys never interleave with another's.
var bConvs = []byte("conversations")

// Key kinds after the conversation id.
const (
	kindHistory = 0x00
	kindState   = 0x01
)

// validConv refuses a conversation id that would not keep its keys
// together in bConvs.
func validConv(conv string) error {
	if conv == "" {
		return fmt.Errorf("store: empty conversation id")
	}
	for i := 0; i < len(conv); i++ {
		if conv[i] <= kindState {
			return fmt.Errorf("store: conversation id %q holds a control byte", conv)
		}
	}
	return nil
}

// convPrefix is conv's keys of one kind: conv and the kind byte.
func convPrefix(conv string, kind byte) []byte {
	k := make([]byte, 0, len(conv)+9)
	return append(append(k, conv...), kind)
}

// historyKey is the key of conv's history message at seq.
func historyKey(conv string, seq uint64) []byte {
	return append(convPrefix(conv, kindHistory), u64key(seq)...)
}

// stateKey is the key of conv's MLS state.
func stateKey(conv string) []byte { return convPrefix(conv, kindState) }

// convBucket is bConvs for writing. state is the length of the state
// this transaction writes for a conversation (0: the stored one's is
// looked up by conv): bbolt splits a full leaf so that the state, the
// last key of its conversation, stays on the page of the newest messages
// (keepTail).
func (t *Tx) convBucket(conv string, state int) *kvBucket {
	b := t.bucket(bConvs)
	if state == 0 {
		state = len(b.Get(stateKey(conv)))
	}
	keepTail(b, len(conv)+1+state)
	return b
}

// splitKey returns the conversation id and key kind of a key of bConvs
// (ok false for a key of no conversation).
func splitKey(k []byte) (conv []byte, kind byte, ok bool) {
	for i, c := range k {
		if c <= kindState {
			return k[:i], c, i > 0
		}
	}
	return nil, 0, false
}

// eachConv calls fn with the id of every conversation holding keys of
// kind in bConvs, in id order: one seek per conversation, however long
// its history.
func (t *Tx) eachConv(kind byte, fn func(conv string)) {
	b := t.bucket(bConvs)
	if b == nil {
		return
	}
	c := b.Cursor()
	for k, _ := c.First(); k != nil; {
		conv, _, ok := splitKey(k)
		if !ok {
			k, _ = c.Next()
			continue
		}
		p := append(append([]byte{}, conv...), kind)
		if k, _ = c.Seek(p); k != nil && bytes.HasPrefix(k, p) && (kind != kindState || len(k) == len(p)) {
			fn(string(conv))
		}
		k, _ = c.Seek(append(p[:len(conv)], kindState+1)) // past conv's keys
	}
}
