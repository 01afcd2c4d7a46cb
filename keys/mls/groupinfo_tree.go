package mls

import (
	"fmt"

	"hearth/keys/mls/message"
	"hearth/keys/mls/treekem"
)

// TreeOfGroupInfo is what a joiner reads from a GroupInfo that travels
// apart from a Welcome whose own GroupInfo omits the ratchet tree
// (CommitOptions.OmitTreeInWelcome). Nothing in it is verified here:
// JoinFromWelcome verifies the tree (signatures, parent hashes, members)
// and that its hash is the one in the Welcome's GroupContext, which the
// joiner's secrets authenticate.
type TreeOfGroupInfo struct {
	GroupID     []byte
	Epoch       uint64
	CipherSuite message.CipherSuite
	// RatchetTree is the encoded ratchet_tree extension, for
	// JoinOptions.RatchetTree.
	RatchetTree []byte
	// Identities are the credential identities of the tree's members in
	// leaf order, so that a client can look up their device lists before
	// joining.
	Identities [][]byte
}

// ReadGroupInfoTree decodes an MLSMessage(GroupInfo) carrying a
// ratchet_tree extension.
func ReadGroupInfoTree(msg []byte) (*TreeOfGroupInfo, error) {
	var m message.MLSMessage
	if err := m.Unmarshal(msg); err != nil {
		return nil, fmt.Errorf("mls: group info: %w", err)
	}
	if m.GroupInfo == nil {
		return nil, fmt.Errorf("%w: group info: not a GroupInfo", message.ErrMalformed)
	}
	gi := m.GroupInfo
	raw, ok := gi.Extensions.Find(message.ExtRatchetTree)
	if !ok {
		return nil, fmt.Errorf("%w: group info carries no ratchet tree", treekem.ErrTree)
	}
	var nodes message.RatchetTreeNodes
	if err := nodes.Unmarshal(raw); err != nil {
		return nil, fmt.Errorf("mls: group info: ratchet tree: %w", err)
	}
	out := &TreeOfGroupInfo{GroupID: gi.GroupContext.GroupID, Epoch: gi.GroupContext.Epoch,
		CipherSuite: gi.GroupContext.CipherSuite, RatchetTree: raw}
	for i, n := range nodes {
		if i%2 == 0 && n != nil && n.Leaf != nil {
			out.Identities = append(out.Identities, n.Leaf.Credential.Identity)
		}
	}
	return out, nil
}
