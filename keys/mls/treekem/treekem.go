package treekem

import (
	"bytes"
	"fmt"
	"io"
	"slices"

	"hearth/keys/mls/message"
	"hearth/keys/mls/suite"
	"hearth/keys/mls/treemath"
)

// pathLabel is the EncryptWithLabel label of path secrets (RFC 9420 §7.6).
// The plaintext is the raw path secret (not a PathSecret struct), as the
// IETF test vectors and the interoperating implementations have it.
const pathLabel = "UpdatePathNode"

// PathResult is the outcome of creating or processing an UpdatePath.
type PathResult struct {
	// Tree is the ratchet tree with the UpdatePath merged.
	Tree *RatchetTree
	// Private is the member's private state after the update.
	Private *PrivateTree
	// GroupContext is the provisional GroupContext the path secrets were
	// encrypted under: the caller's template with TreeHash set to Tree's.
	GroupContext *message.GroupContext
	// CommitSecret is the path secret one step past the root.
	CommitSecret []byte
	// PathSecrets holds the path secret of each filtered-direct-path node
	// the member knows (all of them for the committer; from the lowest
	// common ancestor up for a receiver). The committer gives the one of
	// the common ancestor to each new member in its Welcome.
	PathSecrets map[treemath.NodeIndex][]byte
	// Path is the UpdatePath created (GenerateUpdatePath) or processed.
	Path *message.UpdatePath
}

// mergePath returns a copy of t with the sender's direct path blanked and
// its filtered direct path set to the keys of path, with parent hashes
// computed (RFC 9420 §7.5, §7.9). It returns the parent hash the sender's
// new leaf must carry and the merged tree's node hashes, which are stale
// on the sender's path until setLeaf. The leaf itself is not set.
func (t *RatchetTree) mergePath(sender treemath.LeafIndex, fdp []PathStep, keys []message.HPKEPublicKey) (*RatchetTree, []byte, [][]byte) {
	m := t.Clone() // no memo: changed below
	m.blankPath(sender)
	parents := make([]*message.ParentNode, len(fdp))
	for i, st := range fdp {
		parents[i] = &message.ParentNode{EncryptionKey: keys[i], ParentHash: []byte{}}
		m.nodes[st.Node] = &message.Node{Parent: parents[i]}
	}
	hashes := m.TreeHashes()
	ph := []byte{}
	for i := len(fdp) - 1; i >= 0; i-- {
		parents[i].ParentHash = ph
		ph = m.parentHash(parents[i], hashes[fdp[i].Copath])
	}
	return m, ph, hashes
}

// setLeaf stores the sender's new leaf in the merged tree t and returns
// the provisional GroupContext (ctx with t's tree hash) and its encoding.
func (t *RatchetTree) setLeaf(sender treemath.LeafIndex, leaf *message.LeafNode, hashes [][]byte,
	ctx message.GroupContext) (*message.GroupContext, []byte) {
	t.changed() // also covers the parent hashes mergePath set after its changes
	t.nodes[sender.NodeIndex()] = &message.Node{Leaf: leaf}
	ctx.TreeHash = t.rehashPath(hashes, sender)
	return &ctx, ctx.Marshal()
}

// encryptionTargets returns the resolution of copath child c without the
// leaves in exclude (new members added by the same commit).
func (t *RatchetTree) encryptionTargets(c treemath.NodeIndex, exclude []treemath.LeafIndex) []treemath.NodeIndex {
	res := t.Resolution(c)
	if len(exclude) == 0 {
		return res
	}
	return slices.DeleteFunc(res, func(x treemath.NodeIndex) bool {
		return x.IsLeaf() && slices.Contains(exclude, x.LeafIndex())
	})
}

// GenerateUpdatePath creates an UpdatePath for the member at leaf from
// (RFC 9420 §7.4–§7.6) on t, which must already reflect the commit's
// proposals. leaf is the template of the new LeafNode (credential,
// capabilities, extensions, signature key): its encryption key, source,
// parent hash and signature are set here and it is signed with signer.
// ctx is the provisional GroupContext without its tree hash; exclude
// lists the leaves added by the same commit, which get no ciphertexts.
func (t *RatchetTree) GenerateUpdatePath(rnd io.Reader, from treemath.LeafIndex, leaf message.LeafNode, signer *suite.Signer,
	ctx message.GroupContext, exclude []treemath.LeafIndex) (*PathResult, error) {
	s := t.suite
	if err := t.checkLeaf(from); err != nil {
		return nil, err
	}
	leafPriv, leafPub, err := s.GenerateKeyPair(rnd)
	if err != nil {
		return nil, fmt.Errorf("mls: leaf key pair: %w", err)
	}
	fdp := t.FilteredDirectPath(from)
	priv := NewPrivateTree(from, leafPriv)
	secrets := make([][]byte, len(fdp)+1)
	secrets[0] = make([]byte, s.Nh())
	if _, err := io.ReadFull(rnd, secrets[0]); err != nil {
		return nil, fmt.Errorf("mls: path secret: %w", err)
	}
	keys := make([]message.HPKEPublicKey, len(fdp))
	for i, st := range fdp {
		var k suite.HPKEPrivateKey
		if k, keys[i], err = nodeKeyPair(s, secrets[i]); err != nil {
			return nil, err
		}
		priv.keys[st.Node] = k
		if secrets[i+1], err = nextPathSecret(s, secrets[i]); err != nil {
			return nil, err
		}
	}
	merged, ph, hashes := t.mergePath(from, fdp, keys)
	leaf.EncryptionKey, leaf.Source, leaf.ParentHash = leafPub, message.SourceCommit, ph
	leaf.Lifetime = message.Lifetime{}
	if err := leaf.Sign(s, signer, ctx.GroupID, from); err != nil {
		return nil, err
	}
	gc, gcBytes := merged.setLeaf(from, &leaf, hashes, ctx)
	path := &message.UpdatePath{LeafNode: leaf, Nodes: make([]message.UpdatePathNode, len(fdp))}
	res := &PathResult{Tree: merged, Private: priv, GroupContext: gc, CommitSecret: secrets[len(fdp)],
		PathSecrets: map[treemath.NodeIndex][]byte{}, Path: path}
	for i, st := range fdp {
		res.PathSecrets[st.Node] = secrets[i]
		path.Nodes[i].EncryptionKey = keys[i]
		for _, x := range merged.encryptionTargets(st.Copath, exclude) {
			ct, err := s.EncryptWithLabel(merged.EncryptionKey(x), pathLabel, gcBytes, secrets[i])
			if err != nil {
				return nil, fmt.Errorf("mls: encrypt path secret to node %d: %w", x, err)
			}
			path.Nodes[i].EncryptedPathSecret = append(path.Nodes[i].EncryptedPathSecret, ct)
		}
	}
	return res, nil
}

// VerifyUpdatePath is the public half of processing an UpdatePath sent by
// the member at sender (RFC 9420 §7.5): it checks the path's shape (one
// node per filtered-direct-path step, each with valid HPKE public key and
// one ciphertext per member of the copath resolution minus exclude, each
// of the size a path secret encrypts to), the
// new leaf's source, parent hash (§7.9.2: the chain of parent hashes up
// the merged path) and signature, and merges the path into a copy of t.
// It decrypts nothing, so it is what a server holding no secret can
// check; the result has no Private, CommitSecret or PathSecrets. t must
// already reflect the commit's proposals; exclude lists the leaves they
// added. t is not modified. The caller validates the new leaf beforehand
// with ValidateLeafNode (Source commit, Leaf sender).
func (t *RatchetTree) VerifyUpdatePath(sender treemath.LeafIndex, path *message.UpdatePath, ctx message.GroupContext,
	exclude []treemath.LeafIndex) (*PathResult, error) {
	m, err := t.mergeUpdatePath(sender, path, ctx)
	if err != nil {
		return nil, err
	}
	s := t.suite
	for i, st := range m.fdp {
		cts := path.Nodes[i].EncryptedPathSecret
		if n, want := len(cts), len(t.encryptionTargets(st.Copath, exclude)); n != want {
			return nil, fmt.Errorf("%w: UpdatePath node %d has %d ciphertexts, resolution %d", ErrTree, i, n, want)
		}
		for j, ct := range cts {
			if len(ct.KEMOutput) != s.Nenc() || len(ct.Ciphertext) != s.Nh()+s.AEADOverhead() {
				return nil, fmt.Errorf("%w: UpdatePath node %d ciphertext %d has the wrong size", ErrTree, i, j)
			}
		}
	}
	return &PathResult{Tree: m.tree, GroupContext: m.gc, Path: path}, nil
}

// mergedPath is an UpdatePath checked and merged into a copy of a tree.
type mergedPath struct {
	tree    *RatchetTree
	fdp     []PathStep
	keys    []message.HPKEPublicKey
	gc      *message.GroupContext // provisional: the caller's with the merged tree's hash
	gcBytes []byte
}

// mergeUpdatePath checks the path's length, keys, leaf source, parent
// hash and leaf signature, and merges it into a copy of t.
func (t *RatchetTree) mergeUpdatePath(sender treemath.LeafIndex, path *message.UpdatePath, ctx message.GroupContext) (*mergedPath, error) {
	s := t.suite
	if err := t.checkLeaf(sender); err != nil {
		return nil, err
	}
	fdp := t.FilteredDirectPath(sender)
	if len(path.Nodes) != len(fdp) {
		return nil, fmt.Errorf("%w: UpdatePath has %d nodes, filtered direct path %d", ErrTree, len(path.Nodes), len(fdp))
	}
	if path.LeafNode.Source != message.SourceCommit {
		return nil, fmt.Errorf("%w: UpdatePath leaf source %d, want commit", ErrTree, path.LeafNode.Source)
	}
	keys := make([]message.HPKEPublicKey, len(fdp))
	for i, n := range path.Nodes {
		if err := s.ValidateHPKEPublicKey(n.EncryptionKey); err != nil {
			return nil, fmt.Errorf("%w: UpdatePath node %d key: %w", ErrTree, i, err)
		}
		keys[i] = n.EncryptionKey
	}
	merged, ph, hashes := t.mergePath(sender, fdp, keys)
	if !bytes.Equal(ph, path.LeafNode.ParentHash) {
		return nil, fmt.Errorf("%w: UpdatePath leaf parent hash does not match the path", ErrTree)
	}
	if err := t.VerifyLeafSignature(&path.LeafNode, ctx.GroupID, sender); err != nil {
		return nil, err
	}
	leaf := path.LeafNode
	gc, gcBytes := merged.setLeaf(sender, &leaf, hashes, ctx)
	return &mergedPath{tree: merged, fdp: fdp, keys: keys, gc: gc, gcBytes: gcBytes}, nil
}

// ProcessUpdatePath applies an UpdatePath sent by the member at sender
// (RFC 9420 §7.5): it checks and merges the path as VerifyUpdatePath
// does (except the ciphertext counts of other members' copath nodes),
// decrypts the path secret meant for priv's member with the provisional
// GroupContext (ctx with the new tree hash), derives the secrets above
// it, and checks every derived public key against the path. t must
// already reflect the commit's proposals; exclude lists the leaves they
// added. Neither t nor priv is modified. The caller validates the new
// leaf beforehand with ValidateLeafNode (Source commit, Leaf sender).
func (t *RatchetTree) ProcessUpdatePath(priv *PrivateTree, sender treemath.LeafIndex, path *message.UpdatePath,
	ctx message.GroupContext, exclude []treemath.LeafIndex) (*PathResult, error) {
	if sender == priv.self {
		return nil, fmt.Errorf("%w: cannot process own UpdatePath", ErrTree)
	}
	m, err := t.mergeUpdatePath(sender, path, ctx)
	if err != nil {
		return nil, err
	}
	fdp, keys := m.fdp, m.keys
	secrets, start, err := t.decryptPathSecret(priv, fdp, path, m.gcBytes, exclude)
	if err != nil {
		return nil, err
	}
	res := &PathResult{Tree: m.tree, GroupContext: m.gc, PathSecrets: map[treemath.NodeIndex][]byte{}, Path: path}
	np := priv.clone()
	for _, x := range treemath.DirectPath(sender.NodeIndex(), t.NumLeaves()) {
		delete(np.keys, x)
	}
	for i := start; i < len(fdp); i++ {
		k, pub, err := nodeKeyPair(t.suite, secrets)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(pub, keys[i]) {
			return nil, fmt.Errorf("%w: derived key of node %d does not match the UpdatePath", ErrTree, fdp[i].Node)
		}
		np.keys[fdp[i].Node] = k
		res.PathSecrets[fdp[i].Node] = secrets
		if secrets, err = nextPathSecret(t.suite, secrets); err != nil {
			return nil, err
		}
	}
	res.Private, res.CommitSecret = np, secrets
	return res, nil
}

// decryptPathSecret finds the filtered-direct-path step whose copath
// subtree holds priv's leaf and decrypts its path secret with a key priv
// holds. It returns the secret and the step's position.
func (t *RatchetTree) decryptPathSecret(priv *PrivateTree, fdp []PathStep, path *message.UpdatePath,
	gc []byte, exclude []treemath.LeafIndex) ([]byte, int, error) {
	me := priv.self.NodeIndex()
	for i, st := range fdp {
		if !treemath.IsAncestor(st.Copath, me) {
			continue
		}
		targets := t.encryptionTargets(st.Copath, exclude)
		cts := path.Nodes[i].EncryptedPathSecret
		if len(cts) != len(targets) {
			return nil, 0, fmt.Errorf("%w: UpdatePath node %d has %d ciphertexts, resolution %d", ErrTree, i, len(cts), len(targets))
		}
		for j, x := range targets {
			k, ok := priv.keys[x]
			if !ok {
				continue
			}
			secret, err := t.suite.DecryptWithLabel(k, pathLabel, gc, cts[j])
			if err != nil {
				return nil, 0, fmt.Errorf("mls: decrypt path secret for node %d: %w", st.Node, err)
			}
			if len(secret) != t.suite.Nh() {
				return nil, 0, fmt.Errorf("%w: path secret is %d bytes, want %d", message.ErrMalformed, len(secret), t.suite.Nh())
			}
			return secret, i, nil
		}
		return nil, 0, fmt.Errorf("%w: no private key for the resolution of node %d", ErrTree, st.Copath)
	}
	return nil, 0, fmt.Errorf("%w: leaf %d is not below sender's filtered direct path", ErrTree, priv.self)
}
