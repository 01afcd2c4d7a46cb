package treekem

import (
	"fmt"
	"slices"

	"hearth/keys/mls/treemath"
)

// Verify runs the ratchet tree integrity checks a joining member must make
// (RFC 9420 §12.4.3.1) except comparing the tree hash with the GroupInfo
// and validating credentials, which are the caller's: every leaf
// signature (with groupID), parent-hash validity of every parent node,
// the unmerged_leaves rules, and uniqueness of encryption keys (all
// nodes) and signature keys (leaves).
func (t *RatchetTree) Verify(groupID []byte) error {
	if err := t.VerifyLeafSignatures(groupID); err != nil {
		return err
	}
	if err := t.VerifyParentHashes(); err != nil {
		return err
	}
	if err := t.verifyUnmergedLeaves(); err != nil {
		return err
	}
	return t.verifyUniqueKeys()
}

// verifyUnmergedLeaves checks that each unmerged leaf of a parent P is a
// non-blank descendant of P, listed also by every non-blank node between
// it and P.
func (t *RatchetTree) verifyUnmergedLeaves() error {
	n := t.NumLeaves()
	for x := treemath.NodeIndex(1); uint32(x) < t.Width(); x += 2 {
		p := t.ParentNode(x)
		if p == nil {
			continue
		}
		for _, l := range p.UnmergedLeaves {
			ln := l.NodeIndex()
			if t.Leaf(l) == nil || !treemath.IsAncestor(x, ln) {
				return fmt.Errorf("%w: node %d lists leaf %d as unmerged, which is blank or not below it", ErrTree, x, l)
			}
			for _, y := range treemath.DirectPath(ln, n) {
				if y == x {
					break
				}
				if q := t.ParentNode(y); q != nil && !slices.Contains(q.UnmergedLeaves, l) {
					return fmt.Errorf("%w: leaf %d unmerged at node %d but not at node %d below it", ErrTree, l, x, y)
				}
			}
		}
	}
	return nil
}

// verifyUniqueKeys checks that no HPKE key appears in two nodes and no
// signature key in two leaves.
func (t *RatchetTree) verifyUniqueKeys() error {
	enc := map[string]treemath.NodeIndex{}
	sig := map[string]treemath.LeafIndex{}
	for i, node := range t.nodes {
		if node == nil {
			continue
		}
		x := treemath.NodeIndex(i)
		k := string(t.EncryptionKey(x))
		if y, dup := enc[k]; dup {
			return fmt.Errorf("%w: nodes %d and %d share an encryption key", ErrTree, y, x)
		}
		enc[k] = x
		if node.Leaf != nil {
			k := string(node.Leaf.SignatureKey)
			if m, dup := sig[k]; dup {
				return fmt.Errorf("%w: leaves %d and %d share a signature key", ErrTree, m, x.LeafIndex())
			}
			sig[k] = x.LeafIndex()
		}
	}
	return nil
}
