package mlsgroup

import (
	"bytes"
	"fmt"

	"hearth/client/e2ee"
	"hearth/keys/mls"
)

// ReadGroupInfo reads the group id, epoch and members of a GroupInfo
// carrying the ratchet tree (nothing verified: Join does that).
func (e *Engine) ReadGroupInfo(groupInfo []byte) (string, uint64, []string, error) {
	t, err := mls.ReadGroupInfoTree(groupInfo)
	if err != nil {
		return "", 0, nil, fmt.Errorf("mlsgroup: %w", err)
	}
	members := make([]string, len(t.Identities))
	for i, id := range t.Identities {
		members[i] = string(id)
	}
	return string(t.GroupID), t.Epoch, members, nil
}

// joinWithTree opens a Welcome whose GroupInfo may omit the ratchet tree,
// taking the tree from groupInfo. keys/mls checks the tree's hash against
// the GroupContext the Welcome carries (authenticated by the joiner
// secret), and the group id and epoch of groupInfo must be the joined
// group's: a GroupInfo of another group or epoch is refused.
func (e *Engine) joinWithTree(welcome, groupInfo []byte, private func(ref []byte) ([]byte, error), v e2ee.CredentialValidator) (e2ee.Group, []byte, error) {
	t, err := mls.ReadGroupInfoTree(groupInfo)
	if err != nil {
		return nil, nil, fmt.Errorf("mlsgroup: join: %w", err)
	}
	g, ref, err := e.join(welcome, private, v, mls.JoinOptions{RatchetTree: t.RatchetTree})
	if err != nil {
		return nil, nil, err
	}
	if !bytes.Equal(g.GroupID(), t.GroupID) || g.Epoch() != t.Epoch {
		return nil, nil, fmt.Errorf("mlsgroup: join: the group info is of group %q epoch %d, the Welcome of %q epoch %d",
			t.GroupID, t.Epoch, g.GroupID(), g.Epoch())
	}
	return &group{g: g, v: v}, ref, nil
}
