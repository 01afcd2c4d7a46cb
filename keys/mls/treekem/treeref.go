package treekem

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"hearth/keys/mls/codec"
	"hearth/keys/mls/message"
	"hearth/keys/mls/suite"
)

// TreeRef names a ratchet tree encoding in a split state: its SHA-256.
type TreeRef [sha256.Size]byte

// String returns the ref in hex.
func (r TreeRef) String() string { return hex.EncodeToString(r[:]) }

// Ref returns the SHA-256 of the tree's encoding, memoized with it.
func (t *RatchetTree) Ref() TreeRef {
	if t.ref == nil {
		r := TreeRef(sha256.Sum256(t.Marshal()))
		t.ref = &r
	}
	return *t.ref
}

// UnmarshalRatchetTreeShared is UnmarshalRatchetTree for an encoding the
// caller has checked hashes to ref, without copying b: the nodes' fields
// alias b (capped slices; nodes are never written in place), and b and
// ref are memoized as the tree's encoding and Ref. The caller must not
// modify b afterwards.
func UnmarshalRatchetTreeShared(s *suite.Suite, b []byte, ref TreeRef) (*RatchetTree, error) {
	var nodes message.RatchetTreeNodes
	r := codec.NewReader(b)
	nodes.Decode(r)
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: ratchet tree: %w", message.ErrMalformed, err)
	}
	t, err := NewRatchetTree(s, nodes)
	if err != nil {
		return nil, err
	}
	t.enc, t.ref, t.sizeHint = b[:len(b):len(b)], &ref, len(b)
	return t, nil
}
