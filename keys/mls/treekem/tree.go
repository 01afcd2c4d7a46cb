package treekem

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"

	"hearth/keys/mls/codec"
	"hearth/keys/mls/message"
	"hearth/keys/mls/suite"
	"hearth/keys/mls/treemath"
)

// ErrTree wraps every structural error of a ratchet tree: a malformed
// ratchet_tree extension, an operation on a blank or absent leaf, a
// failed parent-hash or signature check.
var ErrTree = errors.New("mls: invalid ratchet tree")

// RatchetTree is the public state of a group's ratchet tree (RFC 9420 §7)
// in array representation: len(nodes) is always NodeWidth of a power of
// two, and nil marks a blank node.
//
// Nodes stored in a tree are never modified in place: every operation
// replaces the *Node it changes, so Clone is a cheap copy of the node
// slice and trees may share nodes. Callers must treat the *LeafNode and
// *ParentNode values returned by accessors as read-only.
//
// The encoding is memoized (Marshal, Ref) until the nodes change: every
// method that writes t.nodes calls changed first.
type RatchetTree struct {
	suite *suite.Suite
	nodes []*message.Node

	enc      []byte   // memoized Marshal output, nil when stale
	ref      *TreeRef // memoized SHA-256 of enc, nil when stale
	ids      []string // memoized Identities, nil when stale
	sizeHint int      // length of the last encoding, to pre-size the next
}

// NewRatchetTree builds a tree from the nodes of a ratchet_tree extension,
// checking that the last node is present, that leaves sit at even and
// parents at odd indices, and padding with blanks to a full tree.
func NewRatchetTree(s *suite.Suite, nodes message.RatchetTreeNodes) (*RatchetTree, error) {
	if len(nodes) == 0 {
		return nil, fmt.Errorf("%w: no nodes", ErrTree)
	}
	if nodes[len(nodes)-1] == nil {
		return nil, fmt.Errorf("%w: last node is blank", ErrTree)
	}
	if len(nodes) > 1<<31-1 {
		return nil, fmt.Errorf("%w: %d nodes", ErrTree, len(nodes))
	}
	for i, n := range nodes {
		if n == nil {
			continue
		}
		if (n.Leaf != nil) != (i%2 == 0) || (n.Leaf == nil) == (n.Parent == nil) {
			return nil, fmt.Errorf("%w: node %d has the wrong type", ErrTree, i)
		}
	}
	leaves := uint32(len(nodes)+2) / 2
	if leaves&(leaves-1) != 0 {
		leaves = 1 << bits.Len32(leaves)
	}
	full := make([]*message.Node, treemath.NodeWidth(leaves))
	copy(full, nodes)
	return &RatchetTree{suite: s, nodes: full}, nil
}

// UnmarshalRatchetTree decodes a ratchet_tree extension into a tree.
func UnmarshalRatchetTree(s *suite.Suite, b []byte) (*RatchetTree, error) {
	var nodes message.RatchetTreeNodes
	if err := nodes.Unmarshal(b); err != nil {
		return nil, err
	}
	return NewRatchetTree(s, nodes)
}

// NewOneMemberTree returns the tree of a new group whose creator holds leaf 0.
func NewOneMemberTree(s *suite.Suite, leaf *message.LeafNode) *RatchetTree {
	return &RatchetTree{suite: s, nodes: []*message.Node{{Leaf: leaf}}}
}

// Suite returns the tree's cipher suite.
func (t *RatchetTree) Suite() *suite.Suite { return t.suite }

// Nodes returns the ratchet_tree extension value: the nodes without
// trailing blanks (the slice is new; the nodes are shared).
func (t *RatchetTree) Nodes() message.RatchetTreeNodes {
	end := len(t.nodes)
	for end > 0 && t.nodes[end-1] == nil {
		end--
	}
	return slices.Clone(message.RatchetTreeNodes(t.nodes[:end]))
}

// Marshal returns the ratchet_tree extension encoding of the tree. It is
// computed once and kept until the tree changes: do not modify the
// returned bytes (appending to them is safe, the slice has no spare
// capacity).
func (t *RatchetTree) Marshal() []byte {
	if t.enc == nil {
		w := codec.NewWriter(make([]byte, 0, t.sizeHint+t.sizeHint/16+64))
		t.Nodes().Encode(w)
		b := w.Bytes()
		t.enc, t.sizeHint = b[:len(b):len(b)], len(b)
	}
	return t.enc
}

// Clone returns a copy that shares (immutable) nodes with t. The copy
// does not share t's memoized encoding: callers change clones' nodes.
func (t *RatchetTree) Clone() *RatchetTree {
	return &RatchetTree{suite: t.suite, nodes: slices.Clone(t.nodes), sizeHint: t.sizeHint}
}

// changed drops the memoized encoding (and identities); every write to
// t.nodes follows a call to it.
func (t *RatchetTree) changed() { t.enc, t.ref, t.ids = nil, nil, nil }

// Identities returns the credential identities of the non-blank leaves
// that have one, in leaf order. It is memoized until the tree changes (a
// member reads it for every message it sends or receives): do not modify
// the slice.
func (t *RatchetTree) Identities() []string {
	if t.ids == nil {
		ids := make([]string, 0, t.NumLeaves())
		for l := treemath.LeafIndex(0); uint32(l) < t.NumLeaves(); l++ {
			if leaf := t.Leaf(l); leaf != nil && len(leaf.Credential.Identity) > 0 {
				ids = append(ids, string(leaf.Credential.Identity))
			}
		}
		t.ids = ids[:len(ids):len(ids)]
	}
	return t.ids
}

// NumLeaves returns the number of leaves (a power of two), blank or not.
func (t *RatchetTree) NumLeaves() uint32 { return uint32(len(t.nodes)+1) / 2 }

// Width returns the number of nodes.
func (t *RatchetTree) Width() uint32 { return uint32(len(t.nodes)) }

// Node returns node x, or nil if it is blank or outside the tree.
func (t *RatchetTree) Node(x treemath.NodeIndex) *message.Node {
	if uint32(x) >= uint32(len(t.nodes)) {
		return nil
	}
	return t.nodes[x]
}

// Leaf returns leaf l, or nil if it is blank or outside the tree.
func (t *RatchetTree) Leaf(l treemath.LeafIndex) *message.LeafNode {
	if n := t.Node(l.NodeIndex()); n != nil {
		return n.Leaf
	}
	return nil
}

// ParentNode returns parent node x, or nil if it is blank.
func (t *RatchetTree) ParentNode(x treemath.NodeIndex) *message.ParentNode {
	if n := t.Node(x); n != nil {
		return n.Parent
	}
	return nil
}

// EncryptionKey returns the HPKE public key of the non-blank node x.
func (t *RatchetTree) EncryptionKey(x treemath.NodeIndex) message.HPKEPublicKey {
	switch n := t.Node(x); {
	case n == nil:
		return nil
	case n.Leaf != nil:
		return n.Leaf.EncryptionKey
	default:
		return n.Parent.EncryptionKey
	}
}

// Resolution returns the resolution of node x (RFC 9420 §4.1.1): the
// node itself and its unmerged leaves if it is not blank, nothing for a
// blank leaf, and the resolutions of its children for a blank parent.
func (t *RatchetTree) Resolution(x treemath.NodeIndex) []treemath.NodeIndex {
	return t.resolution(x, nil)
}

func (t *RatchetTree) resolution(x treemath.NodeIndex, out []treemath.NodeIndex) []treemath.NodeIndex {
	n := t.Node(x)
	switch {
	case n != nil && n.Leaf != nil:
		return append(out, x)
	case n != nil:
		out = append(out, x)
		for _, l := range n.Parent.UnmergedLeaves {
			out = append(out, l.NodeIndex())
		}
		return out
	case x.IsLeaf():
		return out
	}
	l, _ := treemath.Left(x)
	r, _ := treemath.Right(x)
	return t.resolution(r, t.resolution(l, out))
}

// PathStep is one node of a filtered direct path with the child of it
// that lies on the copath.
type PathStep struct {
	Node   treemath.NodeIndex
	Copath treemath.NodeIndex
}

// FilteredDirectPath returns the filtered direct path of leaf l (RFC 9420
// §4.1.2): the direct path without nodes whose copath child has an empty
// resolution, each with that copath child.
func (t *RatchetTree) FilteredDirectPath(l treemath.LeafIndex) []PathStep {
	x := l.NodeIndex()
	n := t.NumLeaves()
	var out []PathStep
	for _, p := range treemath.DirectPath(x, n) {
		s, _ := treemath.Sibling(x, n)
		if len(t.Resolution(s)) > 0 {
			out = append(out, PathStep{Node: p, Copath: s})
		}
		x = p
	}
	return out
}

// blankPath blanks the direct path of leaf l.
func (t *RatchetTree) blankPath(l treemath.LeafIndex) {
	t.changed()
	for _, p := range treemath.DirectPath(l.NodeIndex(), t.NumLeaves()) {
		t.nodes[p] = nil
	}
}

// checkLeaf returns an error unless l is a non-blank leaf.
func (t *RatchetTree) checkLeaf(l treemath.LeafIndex) error {
	if t.Leaf(l) == nil {
		return fmt.Errorf("%w: leaf %d is blank or absent", ErrTree, l)
	}
	return nil
}

// AddLeaf places leaf in the leftmost blank leaf, extending the tree if
// there is none, and records it as unmerged at every non-blank parent on
// its direct path (RFC 9420 §12.1.1). It returns the new leaf's index.
// The tree keeps leaf: the caller must not modify it afterwards.
func (t *RatchetTree) AddLeaf(leaf *message.LeafNode) treemath.LeafIndex {
	l := treemath.LeafIndex(0)
	for ; uint32(l) < t.NumLeaves(); l++ {
		if t.nodes[l.NodeIndex()] == nil {
			break
		}
	}
	t.changed()
	if uint32(l) == t.NumLeaves() {
		grown := make([]*message.Node, treemath.NodeWidth(2*t.NumLeaves()))
		copy(grown, t.nodes)
		t.nodes = grown
	}
	t.nodes[l.NodeIndex()] = &message.Node{Leaf: leaf}
	for _, p := range treemath.DirectPath(l.NodeIndex(), t.NumLeaves()) {
		if pn := t.ParentNode(p); pn != nil {
			c := *pn
			c.UnmergedLeaves = append(slices.Clone(pn.UnmergedLeaves), l)
			t.nodes[p] = &message.Node{Parent: &c}
		}
	}
	return l
}

// UpdateLeaf replaces the non-blank leaf l and blanks its direct path
// (RFC 9420 §12.1.2).
func (t *RatchetTree) UpdateLeaf(l treemath.LeafIndex, leaf *message.LeafNode) error {
	if err := t.checkLeaf(l); err != nil {
		return err
	}
	t.changed()
	t.nodes[l.NodeIndex()] = &message.Node{Leaf: leaf}
	t.blankPath(l)
	return nil
}

// RemoveLeaf blanks the non-blank leaf l and its direct path, then
// truncates the tree while its right half is blank (RFC 9420 §12.1.3).
func (t *RatchetTree) RemoveLeaf(l treemath.LeafIndex) error {
	if err := t.checkLeaf(l); err != nil {
		return err
	}
	t.changed()
	t.nodes[l.NodeIndex()] = nil
	t.blankPath(l)
	t.truncate()
	return nil
}

// truncate halves the tree while the right subtree of the root is blank
// (keeping at least one leaf).
func (t *RatchetTree) truncate() {
	t.changed()
	for len(t.nodes) > 1 {
		half := len(t.nodes) / 2
		for _, n := range t.nodes[half+1:] {
			if n != nil {
				return
			}
		}
		t.nodes = t.nodes[:half]
	}
}

// ApplyProposal applies an Add, Update or Remove proposal sent by sender
// (the other proposal types do not change the tree). For an Add it
// returns the new member's leaf index.
func (t *RatchetTree) ApplyProposal(p *message.Proposal, sender treemath.LeafIndex) (treemath.LeafIndex, error) {
	switch p.Type {
	case message.ProposalAdd:
		leaf := p.Add.LeafNode // the tree keeps its own copy of the struct
		return t.AddLeaf(&leaf), nil
	case message.ProposalUpdate:
		leaf := *p.Update
		return sender, t.UpdateLeaf(sender, &leaf)
	case message.ProposalRemove:
		return p.Remove, t.RemoveLeaf(p.Remove)
	}
	return 0, fmt.Errorf("%w: proposal type %d does not change the tree", ErrTree, p.Type)
}

// Members returns the indices of the non-blank leaves.
func (t *RatchetTree) Members() []treemath.LeafIndex {
	var out []treemath.LeafIndex
	for l := treemath.LeafIndex(0); uint32(l) < t.NumLeaves(); l++ {
		if t.Leaf(l) != nil {
			out = append(out, l)
		}
	}
	return out
}
