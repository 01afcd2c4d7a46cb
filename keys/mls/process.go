package mls

import (
	"bytes"
	"fmt"
)

// staged is the outcome of a verified message, applied to the group only
// after every check passed.
type staged struct {
	res      *Result
	next     *epochState     // commits
	proposal *cachedProposal // proposals
	removed  bool
}

// Process verifies and applies a received MLSMessage (PublicMessage or
// PrivateMessage). On any error the group is unchanged.
func (g *Group) Process(msg []byte) (*Result, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	var m MLSMessage
	if err := m.Unmarshal(msg); err != nil {
		return nil, fmt.Errorf("mls: process: %w", err)
	}
	var st *staged
	var err error
	switch m.WireFormat {
	case WirePublicMessage:
		st, err = g.processPublic(m.PublicMessage)
	case WirePrivateMessage:
		st, err = g.processPrivate(m.PrivateMessage)
	default:
		err = fmt.Errorf("%w: wire format %d is not a group message", ErrMalformed, m.WireFormat)
	}
	if err != nil {
		return nil, fmt.Errorf("mls: process: %w", err)
	}
	switch {
	case st.removed:
		g.DiscardPendingCommit()
		g.removed = true
	case st.next != nil:
		// Another member's commit for this epoch won at the hub: this
		// member's pending commit (if any) is stale.
		g.DiscardPendingCommit()
		g.retire(st.next)
	case st.proposal != nil:
		g.st.proposals = append(g.st.proposals, *st.proposal)
	}
	return st.res, nil
}

func (g *Group) checkHandshakeEpoch(groupID []byte, epoch uint64) error {
	if !bytes.Equal(groupID, g.st.ctx.GroupID) {
		return ErrGroup
	}
	if epoch != g.st.ctx.Epoch {
		return fmt.Errorf("%w: handshake message for epoch %d, group is at %d", ErrEpoch, epoch, g.st.ctx.Epoch)
	}
	return nil
}

// senderKey returns the signature key that must have signed c.
func (g *Group) senderKey(c *FramedContent) (SignaturePublicKey, error) {
	switch c.Sender.Type {
	case SenderMember:
		leaf := g.st.tree.Leaf(LeafIndex(c.Sender.Index))
		if leaf == nil {
			return nil, fmt.Errorf("%w: leaf %d", ErrSender, c.Sender.Index)
		}
		return leaf.SignatureKey, nil
	case SenderExternal:
		es, _, err := g.st.ctx.Extensions.ExternalSenders()
		if err != nil || int(c.Sender.Index) >= len(es) {
			return nil, fmt.Errorf("%w: external sender %d", ErrSender, c.Sender.Index)
		}
		return es[c.Sender.Index].SignatureKey, nil
	case SenderNewMemberCommit:
		if c.ContentType != ContentCommit || c.Commit.Path == nil {
			return nil, fmt.Errorf("%w: new member commit without path", ErrSender)
		}
		return c.Commit.Path.LeafNode.SignatureKey, nil
	case SenderNewMemberProposal:
		if c.ContentType != ContentProposal || c.Proposal.Type != ProposalAdd {
			return nil, fmt.Errorf("%w: new member proposal that is not an Add", ErrSender)
		}
		return c.Proposal.Add.LeafNode.SignatureKey, nil
	}
	return nil, fmt.Errorf("%w: sender type %d", ErrSender, c.Sender.Type)
}

func (g *Group) processPublic(p *PublicMessage) (*staged, error) {
	c := &p.Content
	if err := g.checkHandshakeEpoch(c.GroupID, c.Epoch); err != nil {
		return nil, err
	}
	if c.ContentType == ContentApplication {
		return nil, fmt.Errorf("%w: application data in a PublicMessage", ErrMalformed)
	}
	key, err := g.senderKey(c)
	if err != nil {
		return nil, err
	}
	if err := p.VerifyPublic(g.s, g.st.secrets.MembershipKey, key, &g.st.ctx); err != nil {
		return nil, err
	}
	return g.handshake(p.AuthenticatedContent())
}

func (g *Group) processPrivate(p *PrivateMessage) (*staged, error) {
	if !bytes.Equal(p.GroupID, g.st.ctx.GroupID) {
		return nil, ErrGroup
	}
	ctx, keys := &g.st.ctx, g.st.keys
	sender := func(l LeafIndex) (Member, bool) {
		m := memberAt(g.st.tree, l)
		return m, m.SignatureKey != nil
	}
	if p.Epoch != g.st.ctx.Epoch {
		past, ok := g.pastEpoch(p.Epoch)
		if !ok || p.ContentType != ContentApplication {
			return nil, fmt.Errorf("%w: message for epoch %d, group is at %d", ErrEpoch, p.Epoch, g.st.ctx.Epoch)
		}
		ctx, keys, sender = &past.ctx, past.keys, past.member
	} else if p.ContentType != ContentApplication {
		if err := g.checkHandshakeEpoch(p.GroupID, p.Epoch); err != nil {
			return nil, err
		}
	}
	var st *staged
	_, err := DecryptPrivate(g.s, p, keys, func(a *AuthenticatedContent) error {
		m, ok := sender(LeafIndex(a.Content.Sender.Index))
		if !ok {
			return fmt.Errorf("%w: leaf %d", ErrSender, a.Content.Sender.Index)
		}
		if err := a.VerifySignature(g.s, m.SignatureKey, ctx); err != nil {
			return err
		}
		if a.Content.ContentType == ContentApplication {
			st = &staged{res: &Result{Kind: ContentApplication, Epoch: g.st.ctx.Epoch, Sender: a.Content.Sender,
				SenderIdentity: m.Identity, Plaintext: a.Content.ApplicationData,
				AuthenticatedData: a.Content.AuthenticatedData}}
			return nil
		}
		var err error
		st, err = g.handshake(a)
		return err
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// handshake stages a verified proposal or commit of the current epoch.
func (g *Group) handshake(a *AuthenticatedContent) (*staged, error) {
	c := &a.Content
	res := &Result{Kind: c.ContentType, Epoch: g.st.ctx.Epoch, Sender: c.Sender, AuthenticatedData: c.AuthenticatedData}
	if c.Sender.Type == SenderMember {
		res.SenderIdentity = memberAt(g.st.tree, LeafIndex(c.Sender.Index)).Identity
	}
	if c.ContentType == ContentProposal {
		cp, err := g.checkProposal(a)
		if err != nil {
			return nil, err
		}
		res.Proposal = cp.p
		return &staged{res: res, proposal: cp}, nil
	}
	if c.Sender.Type == SenderMember && LeafIndex(c.Sender.Index) == g.st.priv.Self() {
		return nil, ErrOwnCommit
	}
	if c.Sender.Type != SenderMember && c.Sender.Type != SenderNewMemberCommit {
		return nil, fmt.Errorf("%w: commit from sender type %d", ErrSender, c.Sender.Type)
	}
	return g.processCommit(a, res)
}

// checkProposal validates a received proposal on its own (the list rules
// are checked when it is committed).
func (g *Group) checkProposal(a *AuthenticatedContent) (*cachedProposal, error) {
	p := a.Content.Proposal
	switch p.Type {
	case ProposalUpdate:
		if a.Content.Sender.Type != SenderMember {
			return nil, fmt.Errorf("%w: Update from a non-member", ErrProposal)
		}
		rc, _, err := g.st.ctx.Extensions.RequiredCapabilities()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrProposal, err)
		}
		l := LeafIndex(a.Content.Sender.Index)
		pol := LeafPolicy{Source: SourceUpdate, GroupID: g.st.ctx.GroupID, Leaf: l, Required: rc}
		if err := g.st.tree.ValidateLeafNode(p.Update, pol); err != nil {
			return nil, fmt.Errorf("%w: Update of leaf %d: %w", ErrProposal, l, err)
		}
		if err := sameIdentity(g.st.tree.Leaf(l), p.Update); err != nil {
			return nil, err
		}
		if err := g.validateMember(p.Update); err != nil {
			return nil, err
		}
	case ProposalAdd:
		rc, _, err := g.st.ctx.Extensions.RequiredCapabilities()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrProposal, err)
		}
		if err := g.checkKeyPackage(g.st.tree, p.Add, rc); err != nil {
			return nil, err
		}
	case ProposalRemove:
		if g.st.tree.Leaf(p.Remove) == nil {
			return nil, fmt.Errorf("%w: Remove of blank leaf %d", ErrProposal, p.Remove)
		}
	case ProposalPSK:
		if err := g.checkPSKID(p.PSK); err != nil {
			return nil, err
		}
	case ProposalReInit:
		return nil, fmt.Errorf("%w: ReInit proposals", ErrUnsupported)
	case ProposalExternalInit:
		return nil, fmt.Errorf("%w: ExternalInit sent as a proposal", ErrProposal)
	}
	ref := a.ProposalRef(g.s)
	if _, dup := g.st.findProposal(ref); dup {
		return nil, fmt.Errorf("%w: proposal %x already received (replay)", ErrProposal, ref)
	}
	return &cachedProposal{ref: ref, p: p, sender: a.Content.Sender}, nil
}
