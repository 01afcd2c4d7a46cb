package treekem

import (
	"bytes"
	"fmt"
	"maps"
	"slices"

	"hearth/keys/mls/codec"
	"hearth/keys/mls/suite"
	"hearth/keys/mls/treemath"
)

// PrivateTree is one member's private TreeKEM state (RFC 9420 §7.4): its
// leaf index and the HPKE private keys it holds for its leaf and for
// parent nodes on its direct path. Operations that change it return a new
// value, so a failed operation leaves the old state intact.
type PrivateTree struct {
	self treemath.LeafIndex
	keys map[treemath.NodeIndex]suite.HPKEPrivateKey
}

// NewPrivateTree returns the state of the member at leaf self holding
// leafKey, the private key of its leaf's encryption_key.
func NewPrivateTree(self treemath.LeafIndex, leafKey suite.HPKEPrivateKey) *PrivateTree {
	return &PrivateTree{self: self, keys: map[treemath.NodeIndex]suite.HPKEPrivateKey{self.NodeIndex(): leafKey}}
}

// Self returns the member's leaf index.
func (p *PrivateTree) Self() treemath.LeafIndex { return p.self }

// Key returns the private key held for node x.
func (p *PrivateTree) Key(x treemath.NodeIndex) (suite.HPKEPrivateKey, bool) {
	k, ok := p.keys[x]
	return k, ok
}

// Nodes returns the number of nodes whose private key is held.
func (p *PrivateTree) Nodes() int { return len(p.keys) }

// Encode writes the member's leaf index and the keys it holds, in node
// order (secret material).
func (p *PrivateTree) Encode(w *codec.Writer) {
	w.Uint32(uint32(p.self))
	keys := slices.Sorted(maps.Keys(p.keys))
	codec.WriteList(w, keys, func(w *codec.Writer, x treemath.NodeIndex) {
		w.Uint32(uint32(x))
		w.Opaque(p.keys[x])
	})
}

// Decode reads what Encode wrote into p, recording errors on r. Whether
// the keys fit a tree is checked by Consistent.
func (p *PrivateTree) Decode(r *codec.Reader) {
	p.self = treemath.LeafIndex(r.Uint32())
	p.keys = map[treemath.NodeIndex]suite.HPKEPrivateKey{}
	r.Vector(func(r *codec.Reader) {
		x, k := treemath.NodeIndex(r.Uint32()), r.Opaque()
		p.keys[x] = k
	})
}

// Clear zeroes the private keys p holds. The copies p was made from or
// gave rise to share them, so only the owner of every copy clears.
func (p *PrivateTree) Clear() {
	for _, k := range p.keys {
		clear(k)
	}
}

func (p *PrivateTree) clone() *PrivateTree {
	return &PrivateTree{self: p.self, keys: maps.Clone(p.keys)}
}

// WithLeafKey returns a copy of p holding leafKey for its leaf (after the
// member's own Update proposal is committed).
func (p *PrivateTree) WithLeafKey(leafKey suite.HPKEPrivateKey) *PrivateTree {
	c := p.clone()
	c.keys[p.self.NodeIndex()] = leafKey
	return c
}

// Pruned returns a copy of p without the keys of nodes that tree has
// blanked or truncated away (after Update and Remove proposals).
func (p *PrivateTree) Pruned(tree *RatchetTree) *PrivateTree {
	c := p.clone()
	for x := range c.keys {
		if tree.Node(x) == nil {
			delete(c.keys, x)
		}
	}
	return c
}

// nodeKeyPair derives the key pair of a node from its path secret.
func nodeKeyPair(s *suite.Suite, pathSecret []byte) (suite.HPKEPrivateKey, suite.HPKEPublicKey, error) {
	nodeSecret, err := s.DeriveSecret(pathSecret, "node")
	if err != nil {
		return nil, nil, fmt.Errorf("mls: node secret: %w", err)
	}
	defer clear(nodeSecret)
	priv, pub, err := s.DeriveKeyPair(nodeSecret)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: node key pair: %w", err)
	}
	return priv, pub, nil
}

// nextPathSecret is DeriveSecret(pathSecret, "path").
func nextPathSecret(s *suite.Suite, pathSecret []byte) ([]byte, error) {
	next, err := s.DeriveSecret(pathSecret, "path")
	if err != nil {
		return nil, fmt.Errorf("mls: path secret: %w", err)
	}
	return next, nil
}

// WithPathSecret returns a copy of p that also holds the key of node x
// derived from pathSecret, after checking that it matches x's public key
// in tree (and that x is an ancestor of p's leaf).
func (p *PrivateTree) WithPathSecret(tree *RatchetTree, x treemath.NodeIndex, pathSecret []byte) (*PrivateTree, error) {
	if x.IsLeaf() || !treemath.IsAncestor(x, p.self.NodeIndex()) {
		return nil, fmt.Errorf("%w: node %d is not above leaf %d", ErrTree, x, p.self)
	}
	priv, pub, err := nodeKeyPair(tree.suite, pathSecret)
	if err != nil {
		return nil, err
	}
	if want := tree.EncryptionKey(x); !bytes.Equal(pub, want) {
		return nil, fmt.Errorf("%w: path secret does not match the public key of node %d", ErrTree, x)
	}
	c := p.clone()
	c.keys[x] = priv
	return c, nil
}

// WithJoinPathSecret returns a copy of p holding the keys a new member
// learns from a Welcome's path_secret (RFC 9420 §12.4.3.1): pathSecret
// belongs to the lowest common ancestor of p's leaf and the committer's,
// and the secrets of the committer's filtered direct path above it follow
// by derivation. Each derived key is checked against tree.
func (p *PrivateTree) WithJoinPathSecret(tree *RatchetTree, committer treemath.LeafIndex, pathSecret []byte) (*PrivateTree, error) {
	ancestor := treemath.CommonAncestor(p.self.NodeIndex(), committer.NodeIndex())
	fdp := tree.FilteredDirectPath(committer)
	start := -1
	for i, st := range fdp {
		if st.Node == ancestor {
			start = i
		}
	}
	if start < 0 || committer == p.self {
		return nil, fmt.Errorf("%w: node %d is not on committer %d's filtered direct path", ErrTree, ancestor, committer)
	}
	c := p.clone()
	secret := pathSecret
	for i := start; i < len(fdp); i++ {
		next, err := c.WithPathSecret(tree, fdp[i].Node, secret)
		if err != nil {
			return nil, err
		}
		c = next
		if secret, err = nextPathSecret(tree.suite, secret); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Consistent checks that every key p holds belongs to a non-blank node of
// tree with the matching public key.
func (p *PrivateTree) Consistent(tree *RatchetTree) error {
	for x, priv := range p.keys {
		want := tree.EncryptionKey(x)
		if want == nil {
			return fmt.Errorf("%w: private key held for blank node %d", ErrTree, x)
		}
		pub, err := tree.suite.HPKEPublicFromPrivate(priv)
		if err != nil {
			return fmt.Errorf("mls: private key of node %d: %w", x, err)
		}
		if !bytes.Equal(pub, want) {
			return fmt.Errorf("%w: private key of node %d does not match its public key", ErrTree, x)
		}
	}
	return nil
}
