package handshake

import (
	"bytes"
	"fmt"

	"hearth/keys/mls/message"
	"hearth/keys/mls/suite"
	"hearth/keys/mls/treekem"
)

// VerifyGroupInfoTree reads the ratchet tree of a GroupInfo (its
// ratchet_tree extension, or external if it has none) and checks it as a
// joiner must (§12.4.3.1): the GroupInfo's suite and version, its
// signature by its signer's leaf, the tree hash against its GroupContext,
// every leaf (signatures, parent hashes, unmerged leaves, unique keys) and
// every member's credential with val.
func VerifyGroupInfoTree(s *suite.Suite, gi *message.GroupInfo, external []byte, val CredentialValidator) (*treekem.RatchetTree, error) {
	if gi.GroupContext.CipherSuite != s.ID() || gi.GroupContext.Version != message.MLS10 {
		return nil, fmt.Errorf("%w: group info suite/version", message.ErrMalformed)
	}
	nodes, ok, err := gi.Extensions.RatchetTree()
	if err != nil {
		return nil, err
	}
	if !ok {
		if external == nil {
			return nil, fmt.Errorf("%w: no ratchet tree in the GroupInfo and none given", treekem.ErrTree)
		}
		if err := nodes.Unmarshal(external); err != nil {
			return nil, err
		}
	}
	tree, err := treekem.NewRatchetTree(s, nodes)
	if err != nil {
		return nil, err
	}
	signerLeaf := tree.Leaf(gi.Signer)
	if signerLeaf == nil {
		return nil, fmt.Errorf("%w: GroupInfo signer %d is not a member", treekem.ErrTree, gi.Signer)
	}
	if err := gi.Verify(s, signerLeaf.SignatureKey); err != nil {
		return nil, err
	}
	if !bytes.Equal(tree.TreeHash(), gi.GroupContext.TreeHash) {
		return nil, fmt.Errorf("%w: tree hash does not match the GroupContext", treekem.ErrTree)
	}
	if err := tree.Verify(gi.GroupContext.GroupID); err != nil {
		return nil, err
	}
	for _, l := range tree.Members() {
		if err := ValidateMember(val, tree.Leaf(l)); err != nil {
			return nil, err
		}
	}
	return tree, nil
}
