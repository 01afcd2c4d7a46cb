package mls

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"hearth/keys/mls/codec"
	"hearth/keys/mls/handshake"
	"hearth/keys/mls/message"
	"hearth/keys/mls/treekem"
)

// The split state form. A member saves its state after every message, but
// a message changes only the secret tree and key-schedule counters, never
// the ratchet tree, which is by far the largest part (about 1.4 MB for
// 1,024 members on the hybrid suite). MarshalSplit therefore leaves the
// trees out: the state names each epoch state's tree (the current epoch's
// and a pending commit's next epoch's) by its TreeRef, and the encodings
// come back separately, for the caller to store once per ref. The member
// lists of the retained past epochs (about 100 KB at 1,024 members) are
// kept apart the same way (state version 3; version 2 kept them inline
// and is still read).
// UnmarshalGroupSplit restores the group, checking every tree it is given
// against its ref.

// ErrTreeMismatch is returned when a tree given for a ref does not hash to it.
var ErrTreeMismatch = errors.New("mls: ratchet tree does not match its reference")

var errSplitState = errors.New("split state (trees stored apart): restore it with UnmarshalGroupSplit")

// MarshalSplit serializes the state like Marshal, except that each epoch
// state's ratchet tree, and each retained past epoch's member list, is
// replaced by its TreeRef (the SHA-256 of its encoding); trees holds the
// encodings the state refers to, by ref. Neither changes when a message
// is sent or received, so a caller that stores each ref once writes only
// the small rest per message. The encodings are memoized: do not modify
// them. Restore with UnmarshalGroupSplit.
func (g *Group) MarshalSplit() (state []byte, trees map[treekem.TreeRef][]byte, err error) {
	trees = map[treekem.TreeRef][]byte{}
	state = g.marshal(splitStateVersion, func(t *treekem.RatchetTree) []byte {
		r := t.Ref()
		trees[r] = t.Marshal()
		return r[:]
	}, func(r treekem.TreeRef, enc []byte) { trees[r] = enc })
	return state, trees, nil
}

// UnmarshalGroupSplit restores a Group saved with MarshalSplit; tree
// returns the encoding stored for a ref. A state saved whole (Marshal) is
// accepted too, without calling tree. A tree that tree cannot return, or
// whose bytes do not hash to the ref (ErrTreeMismatch), fails the restore.
// The group keeps the tree bytes it is given: tree must return bytes the
// caller will not modify afterwards.
func UnmarshalGroupSplit(state []byte, tree func(treekem.TreeRef) ([]byte, error), cfg Config) (*Group, error) {
	if tree == nil {
		return nil, fmt.Errorf("%w: UnmarshalGroupSplit needs a tree lookup", handshake.ErrUnsupported)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	d := &stateReader{r: codec.NewReader(state), trees: tree}
	g := d.group(cfg)
	if err := d.done(); err != nil {
		return nil, fmt.Errorf("%w: group state: %w", message.ErrMalformed, err)
	}
	return g, nil
}

// membersRef returns the ref of the past epoch's member list encoding
// (memoized: a past epoch never changes its members) after handing the
// encoding to blob.
func (p *pastEpoch) membersRef(blob func(treekem.TreeRef, []byte)) []byte {
	if p.membersEnc == nil {
		w := codec.NewWriter(nil)
		writeMembers(w, p.members)
		p.membersEnc = w.Bytes()
		p.membersSum = treekem.TreeRef(sha256.Sum256(p.membersEnc))
	}
	blob(p.membersSum, p.membersEnc)
	return p.membersSum[:]
}

// blobByRef returns the stored bytes for ref b, checked against it.
func (d *stateReader) blobByRef(what string, b []byte) []byte {
	if len(b) != len(treekem.TreeRef{}) {
		d.fail(fmt.Errorf("%s reference is %d bytes", what, len(b)))
		return nil
	}
	ref := treekem.TreeRef(b)
	enc, err := d.trees(ref)
	if err != nil {
		d.fail(fmt.Errorf("%s %s: %w", what, ref, err))
		return nil
	}
	if sha256.Sum256(enc) != ref {
		d.fail(fmt.Errorf("%w: %s %s", ErrTreeMismatch, what, ref))
		return nil
	}
	return enc
}

// membersByRef resolves a past epoch's member list reference b.
func (d *stateReader) membersByRef(b []byte) []handshake.Member {
	enc := d.blobByRef("member list", b)
	if enc == nil {
		return nil
	}
	r := codec.NewReader(enc)
	ms := readMembers(r)
	if err := r.Done(); err != nil {
		d.fail(fmt.Errorf("member list: %w", err))
		return nil
	}
	return ms
}

// treeByRef resolves a split state's tree reference b.
func (d *stateReader) treeByRef(b []byte) *treekem.RatchetTree {
	enc := d.blobByRef("ratchet tree", b)
	if enc == nil {
		return nil
	}
	ref := treekem.TreeRef(b)
	t, err := treekem.UnmarshalRatchetTreeShared(d.s, enc, ref)
	if err != nil {
		d.fail(fmt.Errorf("ratchet tree %s: %w", ref, err))
		return nil
	}
	return t
}
