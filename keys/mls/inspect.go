package mls

import (
	"bytes"
	"fmt"

	"hearth/keys/mls/handshake"
	"hearth/keys/mls/message"
	"hearth/keys/mls/treekem"
)

// GroupInfoSummary is a verified view of a GroupInfo, for the hub that
// keeps the latest one for external joins.
type GroupInfoSummary struct {
	GroupID  []byte
	Epoch    uint64
	Members  []handshake.Member
	External bool // carries external_pub (usable for external commits)
	// Extensions of the GroupContext (e.g. Hearth's group admin key).
	Extensions message.Extensions
}

// InspectGroupInfo decodes an MLSMessage(GroupInfo) and checks what can
// be checked without group secrets: the signature by its signer's leaf
// in the ratchet_tree extension and the tree hash in the GroupContext.
func InspectGroupInfo(msg []byte) (*GroupInfoSummary, error) {
	gi, s, err := parseGroupInfo(msg)
	if err != nil {
		return nil, fmt.Errorf("mls: group info: %w", err)
	}
	nodes, ok, err := gi.Extensions.RatchetTree()
	if err != nil || !ok {
		return nil, fmt.Errorf("%w: group info without a valid ratchet_tree", message.ErrMalformed)
	}
	tree, err := treekem.NewRatchetTree(s, nodes)
	if err != nil {
		return nil, err
	}
	signer := tree.Leaf(gi.Signer)
	if signer == nil {
		return nil, fmt.Errorf("%w: GroupInfo signer %d is not a member", treekem.ErrTree, gi.Signer)
	}
	if err := gi.Verify(s, signer.SignatureKey); err != nil {
		return nil, err
	}
	if !bytes.Equal(tree.TreeHash(), gi.GroupContext.TreeHash) {
		return nil, fmt.Errorf("%w: tree hash does not match the GroupContext", treekem.ErrTree)
	}
	_, ext := gi.Extensions.Find(message.ExtExternalPub)
	sum := &GroupInfoSummary{GroupID: gi.GroupContext.GroupID, Epoch: gi.GroupContext.Epoch, External: ext,
		Extensions: gi.GroupContext.Extensions}
	for _, l := range tree.Members() {
		sum.Members = append(sum.Members, handshake.MemberAt(tree, l))
	}
	return sum, nil
}
