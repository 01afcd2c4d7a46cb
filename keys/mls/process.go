package mls

import (
	"bytes"
	"fmt"

	"hearth/keys/mls/handshake"
	"hearth/keys/mls/message"
	"hearth/keys/mls/treemath"
)

// staged is the outcome of a verified message, applied to the group only
// after every check passed.
type staged struct {
	res      *Result
	next     *epochState               // commits
	proposal *handshake.CachedProposal // proposals
	removed  bool
}

// Process verifies and applies a received MLSMessage (PublicMessage or
// PrivateMessage). On any error the group is unchanged.
func (g *Group) Process(msg []byte) (*Result, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	var m message.MLSMessage
	if err := m.Unmarshal(msg); err != nil {
		return nil, fmt.Errorf("mls: process: %w", err)
	}
	var st *staged
	var err error
	switch m.WireFormat {
	case message.WirePublicMessage:
		st, err = g.processPublic(m.PublicMessage)
	case message.WirePrivateMessage:
		st, err = g.processPrivate(m.PrivateMessage)
	default:
		err = fmt.Errorf("%w: wire format %d is not a group message", message.ErrMalformed, m.WireFormat)
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
	return handshake.CheckEpoch(&g.st.ctx, groupID, epoch)
}

func (g *Group) processPublic(p *message.PublicMessage) (*staged, error) {
	c := &p.Content
	if err := g.checkHandshakeEpoch(c.GroupID, c.Epoch); err != nil {
		return nil, err
	}
	if c.ContentType == message.ContentApplication {
		return nil, fmt.Errorf("%w: application data in a PublicMessage", message.ErrMalformed)
	}
	key, err := g.view().SenderKey(c)
	if err != nil {
		return nil, err
	}
	if err := p.VerifyPublic(g.s, g.st.secrets.MembershipKey, key, &g.st.ctx); err != nil {
		return nil, err
	}
	return g.handshake(p.AuthenticatedContent())
}

func (g *Group) processPrivate(p *message.PrivateMessage) (*staged, error) {
	if !bytes.Equal(p.GroupID, g.st.ctx.GroupID) {
		return nil, handshake.ErrGroup
	}
	ctx, keys := &g.st.ctx, g.st.keys
	sender := func(l treemath.LeafIndex) (handshake.Member, bool) {
		m := handshake.MemberAt(g.st.tree, l)
		return m, m.SignatureKey != nil
	}
	if p.Epoch != g.st.ctx.Epoch {
		past, ok := g.pastEpoch(p.Epoch)
		if !ok || p.ContentType != message.ContentApplication {
			return nil, fmt.Errorf("%w: message for epoch %d, group is at %d", handshake.ErrEpoch, p.Epoch, g.st.ctx.Epoch)
		}
		ctx, keys, sender = &past.ctx, past.keys, past.member
	} else if p.ContentType != message.ContentApplication {
		if err := g.checkHandshakeEpoch(p.GroupID, p.Epoch); err != nil {
			return nil, err
		}
	}
	var st *staged
	_, err := message.DecryptPrivate(g.s, p, keys, func(a *message.AuthenticatedContent) error {
		m, ok := sender(treemath.LeafIndex(a.Content.Sender.Index))
		if !ok {
			return fmt.Errorf("%w: leaf %d", handshake.ErrSender, a.Content.Sender.Index)
		}
		if err := a.VerifySignature(g.s, m.SignatureKey, ctx); err != nil {
			return err
		}
		if a.Content.ContentType == message.ContentApplication {
			st = &staged{res: &Result{Kind: message.ContentApplication, Epoch: g.st.ctx.Epoch, Sender: a.Content.Sender,
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
func (g *Group) handshake(a *message.AuthenticatedContent) (*staged, error) {
	c := &a.Content
	res := &Result{Kind: c.ContentType, Epoch: g.st.ctx.Epoch, Sender: c.Sender, AuthenticatedData: c.AuthenticatedData}
	if c.Sender.Type == message.SenderMember {
		res.SenderIdentity = handshake.MemberAt(g.st.tree, treemath.LeafIndex(c.Sender.Index)).Identity
	}
	if c.ContentType == message.ContentProposal {
		cp, err := g.view().CheckProposal(a)
		if err != nil {
			return nil, err
		}
		res.Proposal = cp.Proposal
		return &staged{res: res, proposal: cp}, nil
	}
	if c.Sender.Type == message.SenderMember && treemath.LeafIndex(c.Sender.Index) == g.st.priv.Self() {
		return nil, ErrOwnCommit
	}
	if c.Sender.Type != message.SenderMember && c.Sender.Type != message.SenderNewMemberCommit {
		return nil, fmt.Errorf("%w: commit from sender type %d", handshake.ErrSender, c.Sender.Type)
	}
	return g.processCommit(a, res)
}
