package treekem

import (
	"bytes"
	"fmt"
	"slices"

	"hearth/keys/mls/codec"
	"hearth/keys/mls/message"
	"hearth/keys/mls/treemath"
)

// TreeHash returns the tree hash of the root (RFC 9420 §7.8).
func (t *RatchetTree) TreeHash() []byte {
	return t.TreeHashes()[treemath.Root(t.NumLeaves())]
}

// TreeHashes returns the tree hash of every node, indexed by node index.
func (t *RatchetTree) TreeHashes() [][]byte {
	hs := make([][]byte, len(t.nodes))
	t.fillHashes(treemath.Root(t.NumLeaves()), nil, hs)
	return hs
}

// fillHashes computes the tree hash of x and its descendants into hs,
// treating the leaves in exclude as blank and as absent from every
// unmerged_leaves list (the "original" tree of RFC 9420 §7.9).
func (t *RatchetTree) fillHashes(x treemath.NodeIndex, exclude []treemath.LeafIndex, hs [][]byte) []byte {
	var h []byte
	if x.IsLeaf() {
		h = t.nodeHash(x, nil, nil, exclude)
	} else {
		l, _ := treemath.Left(x)
		r, _ := treemath.Right(x)
		h = t.nodeHash(x, t.fillHashes(l, exclude, hs), t.fillHashes(r, exclude, hs), exclude)
	}
	if hs != nil {
		hs[x] = h
	}
	return h
}

// nodeHash is the hash of node x's TreeHashInput given its children's
// tree hashes (ignored for leaves); see fillHashes for exclude.
func (t *RatchetTree) nodeHash(x treemath.NodeIndex, lh, rh []byte, exclude []treemath.LeafIndex) []byte {
	if x.IsLeaf() {
		leaf := t.Leaf(x.LeafIndex())
		if slices.Contains(exclude, x.LeafIndex()) {
			leaf = nil
		}
		size := 16
		if leaf != nil {
			size += leaf.SizeHint()
		}
		w := codec.NewWriter(make([]byte, 0, size))
		w.Uint8(uint8(message.NodeTypeLeaf))
		w.Uint32(uint32(x.LeafIndex()))
		w.Optional(leaf != nil, func(w *codec.Writer) { leaf.Encode(w) })
		return t.suite.Hash(w.Bytes())
	}
	p := t.ParentNode(x)
	size := len(lh) + len(rh) + 16
	if p != nil {
		size += len(p.EncryptionKey) + len(p.ParentHash) + 4*len(p.UnmergedLeaves) + 8
	}
	w := codec.NewWriter(make([]byte, 0, size))
	w.Uint8(uint8(message.NodeTypeParent))
	w.Optional(p != nil, func(w *codec.Writer) {
		if len(exclude) > 0 {
			c := *p
			c.UnmergedLeaves = slices.DeleteFunc(slices.Clone(p.UnmergedLeaves),
				func(l treemath.LeafIndex) bool { return slices.Contains(exclude, l) })
			p = &c
		}
		p.Encode(w)
	})
	w.Opaque(lh)
	w.Opaque(rh)
	return t.suite.Hash(w.Bytes())
}

// rehashPath recomputes in hs (from TreeHashes) the tree hashes of leaf l
// and its direct path after they changed, and returns the root's.
func (t *RatchetTree) rehashPath(hs [][]byte, l treemath.LeafIndex) []byte {
	x := l.NodeIndex()
	hs[x] = t.nodeHash(x, nil, nil, nil)
	for _, p := range treemath.DirectPath(x, t.NumLeaves()) {
		left, _ := treemath.Left(p)
		right, _ := treemath.Right(p)
		hs[p] = t.nodeHash(p, hs[left], hs[right], nil)
	}
	return hs[treemath.Root(t.NumLeaves())]
}

// originalTreeHash is the tree hash of x with the leaves in exclude
// blanked and removed from unmerged_leaves lists.
func (t *RatchetTree) originalTreeHash(x treemath.NodeIndex, exclude []treemath.LeafIndex) []byte {
	return t.fillHashes(x, exclude, nil)
}

// parentHash is the parent hash of parent node p with copath child s,
// whose original tree hash is siblingHash (RFC 9420 §7.9).
func (t *RatchetTree) parentHash(p *message.ParentNode, siblingHash []byte) []byte {
	w := codec.NewWriter(nil)
	w.Opaque(p.EncryptionKey)
	w.Opaque(p.ParentHash)
	w.Opaque(siblingHash)
	return t.suite.Hash(w.Bytes())
}

// nodeParentHash returns the parent_hash field of node x (nil if it has
// none: blank, or a leaf not created by a commit).
func (t *RatchetTree) nodeParentHash(x treemath.NodeIndex) ([]byte, bool) {
	switch n := t.Node(x); {
	case n == nil:
		return nil, false
	case n.Leaf != nil:
		return n.Leaf.ParentHash, n.Leaf.Source == message.SourceCommit
	default:
		return n.Parent.ParentHash, true
	}
}

// VerifyParentHashes checks that every non-blank parent node is
// parent-hash valid with respect to exactly one descendant (RFC 9420
// §7.9.2, "top down"), as a member joining the group must.
func (t *RatchetTree) VerifyParentHashes() error {
	hs := t.TreeHashes()
	for x := treemath.NodeIndex(1); uint32(x) < t.Width(); x += 2 {
		p := t.ParentNode(x)
		if p == nil {
			continue
		}
		if n := t.validDescendants(x, p, hs); n != 1 {
			return fmt.Errorf("%w: parent node %d is parent-hash valid for %d descendants, want 1", ErrTree, x, n)
		}
	}
	return nil
}

// validDescendants counts the descendants D of parent node x for which
// x is parent-hash valid. hs holds the current tree hashes, which are the
// original ones for subtrees holding none of p's unmerged leaves.
func (t *RatchetTree) validDescendants(x treemath.NodeIndex, p *message.ParentNode, hs [][]byte) int {
	l, _ := treemath.Left(x)
	r, _ := treemath.Right(x)
	count := 0
	for _, cs := range [2][2]treemath.NodeIndex{{l, r}, {r, l}} {
		c, s := cs[0], cs[1]
		var unmergedUnderC []treemath.NodeIndex
		sibHash := hs[s]
		for _, u := range p.UnmergedLeaves {
			if treemath.IsAncestor(c, u.NodeIndex()) {
				unmergedUnderC = append(unmergedUnderC, u.NodeIndex())
			} else if treemath.IsAncestor(s, u.NodeIndex()) {
				sibHash = nil
			}
		}
		if sibHash == nil {
			sibHash = t.originalTreeHash(s, p.UnmergedLeaves)
		}
		want := t.parentHash(p, sibHash)
		res := t.Resolution(c)
		for _, d := range res {
			ph, ok := t.nodeParentHash(d)
			if !ok || !bytes.Equal(ph, want) {
				continue
			}
			rest := slices.DeleteFunc(slices.Clone(res), func(y treemath.NodeIndex) bool { return y == d })
			if sameSet(rest, unmergedUnderC) {
				count++
			}
		}
	}
	return count
}

// sameSet reports whether a and b hold the same node indices.
func sameSet(a, b []treemath.NodeIndex) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// VerifyLeafSignatures checks the signature of every non-blank leaf with
// groupID as the context of update and commit leaves (RFC 9420 §7.2).
func (t *RatchetTree) VerifyLeafSignatures(groupID []byte) error {
	for _, l := range t.Members() {
		if err := t.VerifyLeafSignature(t.Leaf(l), groupID, l); err != nil {
			return err
		}
	}
	return nil
}

// VerifyLeafSignature checks leaf's signature as the leaf at index l of
// the group groupID.
func (t *RatchetTree) VerifyLeafSignature(leaf *message.LeafNode, groupID []byte, l treemath.LeafIndex) error {
	if err := leaf.Verify(t.suite, groupID, l); err != nil {
		return fmt.Errorf("%w: leaf %d: %w", ErrTree, l, err)
	}
	return nil
}
