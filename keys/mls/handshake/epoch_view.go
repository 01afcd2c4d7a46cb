package handshake

import (
	"bytes"
	"fmt"
	"time"

	"hearth/keys/mls/message"
	"hearth/keys/mls/schedule"
	"hearth/keys/mls/suite"
	"hearth/keys/mls/treekem"
	"hearth/keys/mls/treemath"
)

// View is what verifying a handshake message of the current epoch
// needs: the public state (GroupContext, tree, cached proposals) and the
// policies. A member (Group.view) and the hub (PublicGroup.view) each
// build one, so both run the same sender, proposal, tree and path checks;
// only the member decrypts the path and runs the key schedule.
type View struct {
	Suite        *suite.Suite
	GroupContext *message.GroupContext
	Tree         *treekem.RatchetTree
	Proposals    []CachedProposal
	Validator    CredentialValidator
	Now          time.Time // checked against KeyPackage lifetimes; zero: not checked
	// Member only (nil for the hub): the member's private tree and the
	// leaf keys of its own Update proposals.
	Private    *treekem.PrivateTree
	UpdateKeys map[string]suite.HPKEPrivateKey
}

// validateMember runs the credential validator on a leaf.
func (v *View) validateMember(leaf *message.LeafNode) error {
	return ValidateMember(v.Validator, leaf)
}

func (v *View) findProposal(ref []byte) (*CachedProposal, bool) {
	for i := range v.Proposals {
		if string(v.Proposals[i].Ref) == string(ref) {
			return &v.Proposals[i], true
		}
	}
	return nil, false
}

// SenderKey returns the signature key that must have signed c.
func (v *View) SenderKey(c *message.FramedContent) (message.SignaturePublicKey, error) {
	switch c.Sender.Type {
	case message.SenderMember:
		leaf := v.Tree.Leaf(treemath.LeafIndex(c.Sender.Index))
		if leaf == nil {
			return nil, fmt.Errorf("%w: leaf %d", ErrSender, c.Sender.Index)
		}
		return leaf.SignatureKey, nil
	case message.SenderExternal:
		es, _, err := v.GroupContext.Extensions.ExternalSenders()
		if err != nil || int(c.Sender.Index) >= len(es) {
			return nil, fmt.Errorf("%w: external sender %d", ErrSender, c.Sender.Index)
		}
		return es[c.Sender.Index].SignatureKey, nil
	case message.SenderNewMemberCommit:
		if c.ContentType != message.ContentCommit || c.Commit.Path == nil {
			return nil, fmt.Errorf("%w: new member commit without path", ErrSender)
		}
		return c.Commit.Path.LeafNode.SignatureKey, nil
	case message.SenderNewMemberProposal:
		if c.ContentType != message.ContentProposal || c.Proposal.Type != message.ProposalAdd {
			return nil, fmt.Errorf("%w: new member proposal that is not an Add", ErrSender)
		}
		return c.Proposal.Add.LeafNode.SignatureKey, nil
	}
	return nil, fmt.Errorf("%w: sender type %d", ErrSender, c.Sender.Type)
}

// CheckProposal validates a received proposal on its own (the list rules
// are checked when it is committed) and returns it ready to cache.
func (v *View) CheckProposal(a *message.AuthenticatedContent) (*CachedProposal, error) {
	p := a.Content.Proposal
	switch p.Type {
	case message.ProposalUpdate:
		if a.Content.Sender.Type != message.SenderMember {
			return nil, fmt.Errorf("%w: Update from a non-member", ErrProposal)
		}
		rc, _, err := v.GroupContext.Extensions.RequiredCapabilities()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrProposal, err)
		}
		l := treemath.LeafIndex(a.Content.Sender.Index)
		pol := treekem.LeafPolicy{Source: message.SourceUpdate, GroupID: v.GroupContext.GroupID, Leaf: l, Required: rc}
		if err := v.Tree.ValidateLeafNode(p.Update, pol); err != nil {
			return nil, fmt.Errorf("%w: Update of leaf %d: %w", ErrProposal, l, err)
		}
		if err := sameIdentity(v.Tree.Leaf(l), p.Update); err != nil {
			return nil, err
		}
		if err := v.validateMember(p.Update); err != nil {
			return nil, err
		}
	case message.ProposalAdd:
		rc, _, err := v.GroupContext.Extensions.RequiredCapabilities()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrProposal, err)
		}
		if err := v.checkKeyPackage(v.Tree, p.Add, rc); err != nil {
			return nil, err
		}
	case message.ProposalRemove:
		if v.Tree.Leaf(p.Remove) == nil {
			return nil, fmt.Errorf("%w: Remove of blank leaf %d", ErrProposal, p.Remove)
		}
	case message.ProposalPSK:
		if err := v.checkPSKID(p.PSK); err != nil {
			return nil, err
		}
	case message.ProposalReInit:
		return nil, fmt.Errorf("%w: ReInit proposals", ErrUnsupported)
	case message.ProposalExternalInit:
		return nil, fmt.Errorf("%w: ExternalInit sent as a proposal", ErrProposal)
	}
	ref := a.ProposalRef(v.Suite)
	if _, dup := v.findProposal(ref); dup {
		return nil, fmt.Errorf("%w: proposal %x already received (replay)", ErrProposal, ref)
	}
	return &CachedProposal{Ref: ref, Proposal: p, Sender: a.Content.Sender}, nil
}

// resolveCommit turns a commit's proposal list into proposals with their
// senders, looking references up in the epoch's proposal cache.
func (v *View) resolveCommit(c *message.FramedContent) ([]Resolved, error) {
	var out []Resolved
	for _, por := range c.Commit.Proposals {
		if por.Proposal != nil {
			out = append(out, Resolved{Proposal: por.Proposal, Sender: c.Sender})
			continue
		}
		cp, ok := v.findProposal(por.Reference)
		if !ok {
			return nil, fmt.Errorf("%w: commit references unknown proposal %x", ErrProposal, por.Reference)
		}
		out = append(out, Resolved{Proposal: cp.Proposal, Sender: cp.Sender, Ref: cp.Ref})
	}
	for _, r := range out {
		if r.Ref == nil && r.Proposal.Type == message.ProposalUpdate {
			return nil, fmt.Errorf("%w: Update by value in a commit", ErrProposal)
		}
	}
	return out, nil
}

// StageCommit runs the checks of RFC 9420 §12.4.2 that need no secret on
// a commit whose signature is verified: it resolves and applies the
// proposals, requires a path when they need one, and checks the
// committer's leaf. It returns the provisional state (the external
// joiner's leaf added) and the committer's leaf; the path is not merged.
func (v *View) StageCommit(c *message.FramedContent) (*Provisional, treemath.LeafIndex, error) {
	props, err := v.resolveCommit(c)
	if err != nil {
		return nil, 0, err
	}
	pv, err := v.ApplyProposals(props, c.Sender)
	if err != nil {
		return nil, 0, err
	}
	if pv.PathRequired && c.Commit.Path == nil {
		return nil, 0, fmt.Errorf("%w: commit needs a path", ErrProposal)
	}
	if pv.SelfRemoved {
		return pv, 0, nil
	}
	committer, err := v.committerLeaf(c, pv)
	if err != nil {
		return nil, 0, err
	}
	return pv, committer, nil
}

// committerLeaf returns the committer's leaf: a member's own, checked
// with the credential validator, or for an external commit the leaf the
// joiner takes (added to pv.tree here).
func (v *View) committerLeaf(c *message.FramedContent, pv *Provisional) (treemath.LeafIndex, error) {
	if c.Sender.Type != message.SenderNewMemberCommit {
		l := treemath.LeafIndex(c.Sender.Index)
		return l, v.validateMember(v.Tree.Leaf(l))
	}
	id := c.Commit.Path.LeafNode.Credential.Identity
	for _, m := range pv.Removed {
		if string(m.Identity) != string(id) {
			return 0, fmt.Errorf("%w: external commit removes another member's leaf %d", ErrProposal, m.Leaf)
		}
	}
	if l, dup := LeafWithIdentity(pv.Tree, id); dup {
		return 0, fmt.Errorf("%w: external joiner is already member %d", ErrProposal, l)
	}
	leaf := c.Commit.Path.LeafNode
	return pv.Tree.AddLeaf(&leaf), nil
}

// CheckPathLeaf validates the committer's new leaf in a commit's
// UpdatePath (§7.3 with source commit, extension support, unchanged
// identity, credential).
func (v *View) CheckPathLeaf(c *message.FramedContent, pv *Provisional, committer treemath.LeafIndex) error {
	leaf := &c.Commit.Path.LeafNode
	rc, err := pv.required()
	if err != nil {
		return err
	}
	pol := treekem.LeafPolicy{Source: message.SourceCommit, GroupID: pv.GroupContext.GroupID, Leaf: committer, Required: rc}
	if err := pv.Tree.ValidateLeafNode(leaf, pol); err != nil {
		return fmt.Errorf("mls: commit path leaf: %w", err)
	}
	if err := SupportsExtensions(leaf, pv.GroupContext.Extensions, rc); err != nil {
		return fmt.Errorf("%w: commit path leaf: %w", ErrProposal, err)
	}
	if c.Sender.Type == message.SenderMember {
		if err := sameIdentity(v.Tree.Leaf(committer), leaf); err != nil {
			return err
		}
	}
	return v.validateMember(leaf)
}

// NextContext returns the GroupContext of the epoch a commit starts (the
// tree hash of pv.tree and the new confirmed transcript hash) given the
// current interim transcript hash.
func NextContext(s *suite.Suite, pv *Provisional, interim []byte, ac *message.AuthenticatedContent) message.GroupContext {
	ctx := pv.GroupContext
	if ctx.TreeHash == nil {
		ctx.TreeHash = pv.Tree.TreeHash()
	}
	ctx.ConfirmedTranscriptHash = schedule.ConfirmedTranscriptHash(s, interim, ac.ConfirmedTranscriptHashInput())
	return ctx
}

// CachedProposal is a verified proposal of the current epoch, kept for
// commits that include it by reference.
type CachedProposal struct {
	Ref      []byte
	Proposal *message.Proposal
	Sender   message.Sender
}

// CheckEpoch refuses a handshake message of another group or
// epoch than ctx's.
func CheckEpoch(ctx *message.GroupContext, groupID []byte, epoch uint64) error {
	if !bytes.Equal(groupID, ctx.GroupID) {
		return ErrGroup
	}
	if epoch != ctx.Epoch {
		return fmt.Errorf("%w: handshake message for epoch %d, group is at %d", ErrEpoch, epoch, ctx.Epoch)
	}
	return nil
}
