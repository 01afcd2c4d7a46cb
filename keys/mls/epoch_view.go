package mls

import (
	"fmt"
	"time"

	"hearth/keys/mls/message"
	"hearth/keys/mls/schedule"
	"hearth/keys/mls/suite"
	"hearth/keys/mls/treekem"
	"hearth/keys/mls/treemath"
)

// epochView is what verifying a handshake message of the current epoch
// needs: the public state (GroupContext, tree, cached proposals) and the
// policies. A member (Group.view) and the hub (PublicGroup.view) each
// build one, so both run the same sender, proposal, tree and path checks;
// only the member decrypts the path and runs the key schedule.
type epochView struct {
	s         *suite.Suite
	ctx       *message.GroupContext
	tree      *treekem.RatchetTree
	proposals []cachedProposal
	validator CredentialValidator
	now       time.Time // checked against KeyPackage lifetimes; zero: not checked
	// Member only (nil for the hub): the member's private tree and the
	// leaf keys of its own Update proposals.
	priv       *treekem.PrivateTree
	updateKeys map[string]suite.HPKEPrivateKey
}

// view returns the member's view of its current epoch.
func (g *Group) view() *epochView {
	return &epochView{s: g.s, ctx: &g.st.ctx, tree: g.st.tree, proposals: g.st.proposals,
		validator: g.cfg.Validator, now: g.cfg.Now(), priv: g.st.priv, updateKeys: g.st.updateKeys}
}

// validateMember runs the credential validator on a leaf.
func (v *epochView) validateMember(leaf *message.LeafNode) error {
	return validateLeaf(v.validator, leaf)
}

func validateLeaf(val CredentialValidator, leaf *message.LeafNode) error {
	if err := val.ValidateMember(leaf.Credential.Identity, leaf.SignatureKey); err != nil {
		return fmt.Errorf("%w: %q: %w", ErrCredential, leaf.Credential.Identity, err)
	}
	return nil
}

func (v *epochView) findProposal(ref []byte) (*cachedProposal, bool) {
	for i := range v.proposals {
		if string(v.proposals[i].ref) == string(ref) {
			return &v.proposals[i], true
		}
	}
	return nil, false
}

// senderKey returns the signature key that must have signed c.
func (v *epochView) senderKey(c *message.FramedContent) (message.SignaturePublicKey, error) {
	switch c.Sender.Type {
	case message.SenderMember:
		leaf := v.tree.Leaf(treemath.LeafIndex(c.Sender.Index))
		if leaf == nil {
			return nil, fmt.Errorf("%w: leaf %d", ErrSender, c.Sender.Index)
		}
		return leaf.SignatureKey, nil
	case message.SenderExternal:
		es, _, err := v.ctx.Extensions.ExternalSenders()
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

// checkProposal validates a received proposal on its own (the list rules
// are checked when it is committed) and returns it ready to cache.
func (v *epochView) checkProposal(a *message.AuthenticatedContent) (*cachedProposal, error) {
	p := a.Content.Proposal
	switch p.Type {
	case message.ProposalUpdate:
		if a.Content.Sender.Type != message.SenderMember {
			return nil, fmt.Errorf("%w: Update from a non-member", ErrProposal)
		}
		rc, _, err := v.ctx.Extensions.RequiredCapabilities()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrProposal, err)
		}
		l := treemath.LeafIndex(a.Content.Sender.Index)
		pol := treekem.LeafPolicy{Source: message.SourceUpdate, GroupID: v.ctx.GroupID, Leaf: l, Required: rc}
		if err := v.tree.ValidateLeafNode(p.Update, pol); err != nil {
			return nil, fmt.Errorf("%w: Update of leaf %d: %w", ErrProposal, l, err)
		}
		if err := sameIdentity(v.tree.Leaf(l), p.Update); err != nil {
			return nil, err
		}
		if err := v.validateMember(p.Update); err != nil {
			return nil, err
		}
	case message.ProposalAdd:
		rc, _, err := v.ctx.Extensions.RequiredCapabilities()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrProposal, err)
		}
		if err := v.checkKeyPackage(v.tree, p.Add, rc); err != nil {
			return nil, err
		}
	case message.ProposalRemove:
		if v.tree.Leaf(p.Remove) == nil {
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
	ref := a.ProposalRef(v.s)
	if _, dup := v.findProposal(ref); dup {
		return nil, fmt.Errorf("%w: proposal %x already received (replay)", ErrProposal, ref)
	}
	return &cachedProposal{ref: ref, p: p, sender: a.Content.Sender}, nil
}

// resolveCommit turns a commit's proposal list into proposals with their
// senders, looking references up in the epoch's proposal cache.
func (v *epochView) resolveCommit(c *message.FramedContent) ([]resolved, error) {
	var out []resolved
	for _, por := range c.Commit.Proposals {
		if por.Proposal != nil {
			out = append(out, resolved{p: por.Proposal, sender: c.Sender})
			continue
		}
		cp, ok := v.findProposal(por.Reference)
		if !ok {
			return nil, fmt.Errorf("%w: commit references unknown proposal %x", ErrProposal, por.Reference)
		}
		out = append(out, resolved{p: cp.p, sender: cp.sender, ref: cp.ref})
	}
	for _, r := range out {
		if r.ref == nil && r.p.Type == message.ProposalUpdate {
			return nil, fmt.Errorf("%w: Update by value in a commit", ErrProposal)
		}
	}
	return out, nil
}

// stageCommit runs the checks of RFC 9420 §12.4.2 that need no secret on
// a commit whose signature is verified: it resolves and applies the
// proposals, requires a path when they need one, and checks the
// committer's leaf. It returns the provisional state (the external
// joiner's leaf added) and the committer's leaf; the path is not merged.
func (v *epochView) stageCommit(c *message.FramedContent) (*provisional, treemath.LeafIndex, error) {
	props, err := v.resolveCommit(c)
	if err != nil {
		return nil, 0, err
	}
	pv, err := v.applyProposals(props, c.Sender)
	if err != nil {
		return nil, 0, err
	}
	if pv.pathRequired && c.Commit.Path == nil {
		return nil, 0, fmt.Errorf("%w: commit needs a path", ErrProposal)
	}
	if pv.selfRemoved {
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
func (v *epochView) committerLeaf(c *message.FramedContent, pv *provisional) (treemath.LeafIndex, error) {
	if c.Sender.Type != message.SenderNewMemberCommit {
		l := treemath.LeafIndex(c.Sender.Index)
		return l, v.validateMember(v.tree.Leaf(l))
	}
	id := c.Commit.Path.LeafNode.Credential.Identity
	for _, m := range pv.removed {
		if string(m.Identity) != string(id) {
			return 0, fmt.Errorf("%w: external commit removes another member's leaf %d", ErrProposal, m.Leaf)
		}
	}
	if l, dup := leafWithIdentity(pv.tree, id); dup {
		return 0, fmt.Errorf("%w: external joiner is already member %d", ErrProposal, l)
	}
	leaf := c.Commit.Path.LeafNode
	return pv.tree.AddLeaf(&leaf), nil
}

// checkPathLeaf validates the committer's new leaf in a commit's
// UpdatePath (§7.3 with source commit, extension support, unchanged
// identity, credential).
func (v *epochView) checkPathLeaf(c *message.FramedContent, pv *provisional, committer treemath.LeafIndex) error {
	leaf := &c.Commit.Path.LeafNode
	rc, err := pv.required()
	if err != nil {
		return err
	}
	pol := treekem.LeafPolicy{Source: message.SourceCommit, GroupID: pv.ctx.GroupID, Leaf: committer, Required: rc}
	if err := pv.tree.ValidateLeafNode(leaf, pol); err != nil {
		return fmt.Errorf("mls: commit path leaf: %w", err)
	}
	if err := supportsExtensions(leaf, pv.ctx.Extensions, rc); err != nil {
		return fmt.Errorf("%w: commit path leaf: %w", ErrProposal, err)
	}
	if c.Sender.Type == message.SenderMember {
		if err := sameIdentity(v.tree.Leaf(committer), leaf); err != nil {
			return err
		}
	}
	return v.validateMember(leaf)
}

// nextContext returns the GroupContext of the epoch a commit starts (the
// tree hash of pv.tree and the new confirmed transcript hash) given the
// current interim transcript hash.
func nextContext(s *suite.Suite, pv *provisional, interim []byte, ac *message.AuthenticatedContent) message.GroupContext {
	ctx := pv.ctx
	if ctx.TreeHash == nil {
		ctx.TreeHash = pv.tree.TreeHash()
	}
	ctx.ConfirmedTranscriptHash = schedule.ConfirmedTranscriptHash(s, interim, ac.ConfirmedTranscriptHashInput())
	return ctx
}
