package mls

import (
	"fmt"

	"hearth/keys/mls/handshake"
	"hearth/keys/mls/message"
	"hearth/keys/mls/schedule"
	"hearth/keys/mls/suite"
)

// ExternalJoinOptions tune JoinExternal.
type ExternalJoinOptions struct {
	// RatchetTree is the encoded tree when the GroupInfo has no
	// ratchet_tree extension.
	RatchetTree []byte
	// Resync removes the leaf that has the same credential identity as
	// the joiner (a device rejoining after losing its state).
	Resync bool
	// Leaf options (capabilities, leaf extensions) for the joiner's leaf.
	Leaf              message.KeyPackageOptions
	AuthenticatedData []byte
}

// JoinExternal joins a group by external commit (RFC 9420 §12.4.3.2) from
// an MLSMessage(GroupInfo) carrying external_pub (the hub keeps the
// latest one). It returns the new member's group, already in the new
// epoch, and the commit (MLSMessage(PublicMessage)) to send to the hub.
// If the hub refuses the commit (stale epoch), drop the group and retry
// with the newer GroupInfo.
func JoinExternal(cfg Config, groupInfo []byte, signer *suite.Signer, cred message.Credential,
	opts ExternalJoinOptions) (*Group, []byte, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, nil, err
	}
	gi, s, err := parseGroupInfo(groupInfo)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: external join: %w", err)
	}
	g := &Group{cfg: cfg, s: s, signer: signer}
	props, initSecret, err := g.externalStart(gi, cred, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: external join: %w", err)
	}
	me := message.Sender{Type: message.SenderNewMemberCommit}
	pv, err := g.view().ApplyProposals(props, me)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: external join: %w", err)
	}
	if opts.Leaf.Now.IsZero() {
		opts.Leaf.Now = cfg.Now()
	}
	kp, _, err := message.NewKeyPackage(s, cfg.Rand, signer, cred, opts.Leaf)
	if err != nil {
		return nil, nil, err
	}
	if err := g.validateMember(&kp.LeafNode); err != nil {
		return nil, nil, err
	}
	placeholder := kp.LeafNode
	self := pv.Tree.AddLeaf(&placeholder)
	res, err := pv.Tree.GenerateUpdatePath(cfg.Rand, self, kp.LeafNode, signer, pv.GroupContext, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: external join path: %w", err)
	}
	pv.Tree, pv.GroupContext.TreeHash = res.Tree, res.GroupContext.TreeHash
	commit := &message.Commit{Path: res.Path}
	for _, r := range props {
		commit.Proposals = append(commit.Proposals, message.ProposalOrRef{Proposal: r.Proposal})
	}
	content := &message.FramedContent{GroupID: gi.GroupContext.GroupID, Epoch: gi.GroupContext.Epoch, Sender: me,
		AuthenticatedData: nonNil(opts.AuthenticatedData), ContentType: message.ContentCommit, Commit: commit}
	ac, err := message.SignContent(s, signer, message.WirePublicMessage, content, &gi.GroupContext)
	if err != nil {
		return nil, nil, err
	}
	next, epoch, _, err := g.nextEpoch(pv, ac, res.Private, initSecret, res.CommitSecret)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: external join: %w", err)
	}
	epoch.DropJoinerSecrets()
	pm, err := message.NewPublicMessage(s, ac, nil, &gi.GroupContext)
	if err != nil {
		return nil, nil, err
	}
	g.st = next
	return g, (&message.MLSMessage{WireFormat: message.WirePublicMessage, PublicMessage: pm}).Marshal(), nil
}

// externalStart verifies the GroupInfo and its tree, sets up the joiner's
// view of the current epoch, and returns the external commit's proposals
// and the init secret from external_pub.
func (g *Group) externalStart(gi *message.GroupInfo, cred message.Credential,
	opts ExternalJoinOptions) ([]handshake.Resolved, []byte, error) {
	tree, err := g.joinTree(gi, opts.RatchetTree)
	if err != nil {
		return nil, nil, err
	}
	ep, ok, err := gi.Extensions.ExternalPub()
	if err != nil || !ok {
		return nil, nil, fmt.Errorf("%w: GroupInfo has no valid external_pub", message.ErrMalformed)
	}
	kemOutput, initSecret, err := schedule.ExternalInit(g.s, ep.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	g.st = &epochState{ctx: gi.GroupContext, tree: tree, externalPSKs: map[string][]byte{},
		interim: schedule.InterimTranscriptHash(g.s, gi.GroupContext.ConfirmedTranscriptHash, gi.ConfirmationTag)}
	me := message.Sender{Type: message.SenderNewMemberCommit}
	ei := &message.Proposal{Type: message.ProposalExternalInit, ExternalInitKEMOutput: kemOutput}
	props := []handshake.Resolved{{Proposal: ei, Sender: me}}
	if old, ok := g.LeafOf(cred.Identity); ok {
		if !opts.Resync {
			return nil, nil, fmt.Errorf("%w: %q is already member %d (set Resync to replace it)", handshake.ErrProposal, cred.Identity, old)
		}
		props = append(props, handshake.Resolved{Proposal: &message.Proposal{Type: message.ProposalRemove, Remove: old}, Sender: me})
	}
	return props, initSecret, nil
}

// parseGroupInfo decodes an MLSMessage(GroupInfo) and looks up its suite.
func parseGroupInfo(b []byte) (*message.GroupInfo, *suite.Suite, error) {
	var m message.MLSMessage
	if err := m.Unmarshal(b); err != nil {
		return nil, nil, err
	}
	if m.GroupInfo == nil {
		return nil, nil, fmt.Errorf("%w: not a GroupInfo", message.ErrMalformed)
	}
	s, err := suite.Lookup(m.GroupInfo.GroupContext.CipherSuite)
	if err != nil {
		return nil, nil, err
	}
	return m.GroupInfo, s, nil
}
