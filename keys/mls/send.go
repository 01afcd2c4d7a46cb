package mls

import (
	"fmt"
	"slices"

	"hearth/keys/mls/message"
	"hearth/keys/mls/treemath"
)

// Encrypt protects an application message as MLSMessage(PrivateMessage)
// for the current epoch. authenticatedData is sent in the clear but
// authenticated.
func (g *Group) Encrypt(plaintext, authenticatedData []byte) ([]byte, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	cur := g.st
	c := &message.FramedContent{GroupID: cur.ctx.GroupID, Epoch: cur.ctx.Epoch,
		Sender:            message.Sender{Type: message.SenderMember, Index: uint32(cur.priv.Self())},
		AuthenticatedData: nonNil(authenticatedData), ContentType: message.ContentApplication, ApplicationData: nonNil(plaintext)}
	a, err := message.SignContent(g.s, g.signer, message.WirePrivateMessage, c, &cur.ctx)
	if err != nil {
		return nil, err
	}
	pm, err := message.EncryptPrivate(g.s, g.cfg.Rand, a, cur.keys, g.cfg.PaddingBlock)
	if err != nil {
		return nil, fmt.Errorf("mls: encrypt: %w", err)
	}
	return (&message.MLSMessage{WireFormat: message.WirePrivateMessage, PrivateMessage: pm}).Marshal(), nil
}

// propose signs p as a PublicMessage of this member and caches it, so a
// later commit (by anyone) can include it by reference.
func (g *Group) propose(p *message.Proposal) ([]byte, []byte, error) {
	if err := g.usable(); err != nil {
		return nil, nil, err
	}
	if g.pending != nil {
		return nil, nil, fmt.Errorf("%w: a commit is pending", ErrPending)
	}
	cur := g.st
	c := &message.FramedContent{GroupID: cur.ctx.GroupID, Epoch: cur.ctx.Epoch,
		Sender:            message.Sender{Type: message.SenderMember, Index: uint32(cur.priv.Self())},
		AuthenticatedData: []byte{}, ContentType: message.ContentProposal, Proposal: p}
	a, err := message.SignContent(g.s, g.signer, message.WirePublicMessage, c, &cur.ctx)
	if err != nil {
		return nil, nil, err
	}
	cp, err := g.view().CheckProposal(a)
	if err != nil {
		return nil, nil, err
	}
	pm, err := message.NewPublicMessage(g.s, a, cur.secrets.MembershipKey, &cur.ctx)
	if err != nil {
		return nil, nil, err
	}
	cur.proposals = append(cur.proposals, *cp)
	return (&message.MLSMessage{WireFormat: message.WirePublicMessage, PublicMessage: pm}).Marshal(), cp.Ref, nil
}

// ProposeAdd proposes adding the KeyPackage's device.
func (g *Group) ProposeAdd(kp *message.KeyPackage) ([]byte, error) {
	msg, _, err := g.propose(&message.Proposal{Type: message.ProposalAdd, Add: kp})
	return msg, err
}

// ProposeRemove proposes removing leaf l (this member's own leaf too:
// another member then commits it, which is how a device leaves).
func (g *Group) ProposeRemove(l treemath.LeafIndex) ([]byte, error) {
	msg, _, err := g.propose(&message.Proposal{Type: message.ProposalRemove, Remove: l})
	return msg, err
}

// ProposeGroupContextExtensions proposes replacing the GroupContext
// extensions.
func (g *Group) ProposeGroupContextExtensions(ext message.Extensions) ([]byte, error) {
	msg, _, err := g.propose(&message.Proposal{Type: message.ProposalGroupContextExtensions, GroupContextExtensions: slices.Clone(ext)})
	return msg, err
}

// ProposePSK proposes injecting a pre-shared key into the next epoch.
func (g *Group) ProposePSK(id message.PreSharedKeyID) ([]byte, error) {
	msg, _, err := g.propose(&message.Proposal{Type: message.ProposalPSK, PSK: &id})
	return msg, err
}

// ProposeUpdate proposes a fresh leaf key for this member; the private
// key is kept until a commit applies the proposal (or the epoch ends).
func (g *Group) ProposeUpdate() ([]byte, error) {
	cur := g.st
	self := cur.priv.Self()
	priv, pub, err := g.s.GenerateKeyPair(g.cfg.Rand)
	if err != nil {
		return nil, fmt.Errorf("mls: update key: %w", err)
	}
	leaf := *cur.tree.Leaf(self)
	leaf.EncryptionKey, leaf.Source, leaf.Lifetime, leaf.ParentHash = pub, message.SourceUpdate, message.Lifetime{}, nil
	if err := leaf.Sign(g.s, g.signer, cur.ctx.GroupID, self); err != nil {
		return nil, err
	}
	msg, ref, err := g.propose(&message.Proposal{Type: message.ProposalUpdate, Update: &leaf})
	if err != nil {
		return nil, err
	}
	cur.updateKeys[string(ref)] = priv
	return msg, nil
}
