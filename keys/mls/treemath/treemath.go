package treemath

import "math/bits"

// NodeIndex is the index of a node in the array representation of the
// tree (RFC 9420 §4.1): leaves sit at even indices, parents at odd ones.
type NodeIndex uint32

// LeafIndex is the index of a leaf among the leaves (node index / 2).
type LeafIndex uint32

// NodeIndex returns the node index of leaf l.
func (l LeafIndex) NodeIndex() NodeIndex { return NodeIndex(2 * uint32(l)) }

// IsLeaf reports whether x is a leaf node.
func (x NodeIndex) IsLeaf() bool { return x%2 == 0 }

// LeafIndex returns the leaf index of a leaf node x.
func (x NodeIndex) LeafIndex() LeafIndex { return LeafIndex(x / 2) }

// level is the height of x above the leaves: the number of trailing one bits.
func level(x NodeIndex) uint { return uint(bits.TrailingZeros32(^uint32(x))) }

// Level returns the level of node x (0 for leaves).
func Level(x NodeIndex) uint { return level(x) }

// NodeWidth returns the number of nodes in a tree with n leaves.
func NodeWidth(n uint32) uint32 {
	if n == 0 {
		return 0
	}
	return 2*(n-1) + 1
}

// Root returns the root node of a tree with n leaves (n > 0). Trees in
// MLS always have a power-of-two number of leaves; for other n the root
// is that of the smallest full tree covering n leaves' node width.
func Root(n uint32) NodeIndex {
	w := NodeWidth(n)
	if w == 0 {
		return 0
	}
	return NodeIndex(uint32(1)<<(bits.Len32(w)-1) - 1)
}

// Left returns the left child of the parent node x. ok is false for leaves.
func Left(x NodeIndex) (NodeIndex, bool) {
	k := level(x)
	if k == 0 {
		return 0, false
	}
	return x ^ NodeIndex(1)<<(k-1), true
}

// Right returns the right child of the parent node x. ok is false for leaves.
func Right(x NodeIndex) (NodeIndex, bool) {
	k := level(x)
	if k == 0 {
		return 0, false
	}
	return x ^ NodeIndex(3)<<(k-1), true
}

// Parent returns the parent of x in a tree with n leaves. ok is false for
// the root and for nodes outside the tree.
func Parent(x NodeIndex, n uint32) (NodeIndex, bool) {
	if uint32(x) >= NodeWidth(n) || x == Root(n) {
		return 0, false
	}
	return parentOf(x), true
}

func parentOf(x NodeIndex) NodeIndex {
	k := level(x)
	b := (x >> (k + 1)) & 1
	return (x | NodeIndex(1)<<k) ^ (b << (k + 1))
}

// Sibling returns the other child of x's parent. ok is false for the root
// and for nodes outside the tree.
func Sibling(x NodeIndex, n uint32) (NodeIndex, bool) {
	p, ok := Parent(x, n)
	if !ok {
		return 0, false
	}
	if x < p {
		r, _ := Right(p)
		return r, true
	}
	l, _ := Left(p)
	return l, true
}

// DirectPath returns the parents of x from its parent up to the root, in
// a tree with n leaves. It is empty for the root.
func DirectPath(x NodeIndex, n uint32) []NodeIndex {
	if uint32(x) >= NodeWidth(n) {
		return nil
	}
	r := Root(n)
	var d []NodeIndex
	for x != r {
		x = parentOf(x)
		d = append(d, x)
	}
	return d
}

// Copath returns the siblings of x and of each node of its direct path
// except the root, in a tree with n leaves.
func Copath(x NodeIndex, n uint32) []NodeIndex {
	d := DirectPath(x, n)
	if len(d) == 0 {
		return nil
	}
	path := append([]NodeIndex{x}, d[:len(d)-1]...)
	c := make([]NodeIndex, len(path))
	for i, y := range path {
		c[i], _ = Sibling(y, n)
	}
	return c
}

// IsAncestor reports whether a is an ancestor of (or equal to) x: whether
// x lies in the subtree rooted at a.
func IsAncestor(a, x NodeIndex) bool {
	k := level(a)
	lo := (uint32(a) >> (k + 1)) << (k + 1)
	hi := lo + (uint32(1) << (k + 1)) - 2
	return uint32(x) >= lo && uint32(x) <= hi
}

// CommonAncestor returns the lowest common ancestor of nodes x and y.
func CommonAncestor(x, y NodeIndex) NodeIndex {
	lx, ly := level(x)+1, level(y)+1
	if lx <= ly && uint32(x)>>ly == uint32(y)>>ly {
		return y
	}
	if ly <= lx && uint32(x)>>lx == uint32(y)>>lx {
		return x
	}
	xn, yn := uint32(x), uint32(y)
	var k uint
	for xn != yn {
		xn >>= 1
		yn >>= 1
		k++
	}
	return NodeIndex(xn<<k | (uint32(1)<<(k-1) - 1))
}
