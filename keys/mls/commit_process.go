package mls

import (
	"fmt"
)

// resolveCommit turns a commit's proposal list into proposals with their
// senders, looking references up in the epoch's proposal cache.
func (g *Group) resolveCommit(c *FramedContent) ([]resolved, error) {
	var out []resolved
	for _, por := range c.Commit.Proposals {
		if por.Proposal != nil {
			out = append(out, resolved{p: por.Proposal, sender: c.Sender})
			continue
		}
		cp, ok := g.st.findProposal(por.Reference)
		if !ok {
			return nil, fmt.Errorf("%w: commit references unknown proposal %x", ErrProposal, por.Reference)
		}
		out = append(out, resolved{p: cp.p, sender: cp.sender, ref: cp.ref})
	}
	for _, r := range out {
		if r.ref == nil && r.p.Type == ProposalUpdate {
			return nil, fmt.Errorf("%w: Update by value in a commit", ErrProposal)
		}
	}
	return out, nil
}

// processCommit stages a verified commit of another member or of an
// external joiner (RFC 9420 §12.4.2). The signature and, for members, the
// membership tag are already checked.
func (g *Group) processCommit(a *AuthenticatedContent, res *Result) (*staged, error) {
	c := &a.Content
	cur := g.st
	props, err := g.resolveCommit(c)
	if err != nil {
		return nil, err
	}
	pv, err := g.applyProposals(props, c.Sender)
	if err != nil {
		return nil, err
	}
	res.Removed, res.Updated, res.Epoch = pv.removed, pv.updated, pv.ctx.Epoch
	path := c.Commit.Path
	if pv.pathRequired && path == nil {
		return nil, fmt.Errorf("%w: commit needs a path", ErrProposal)
	}
	if pv.selfRemoved {
		res.SelfRemoved = true
		for _, l := range pv.added {
			res.Added = append(res.Added, memberAt(pv.tree, l))
		}
		return &staged{res: res, removed: true}, nil
	}
	committer, err := g.committerLeaf(c, pv)
	if err != nil {
		return nil, err
	}
	priv := cur.priv.Pruned(pv.tree)
	if pv.ownUpdate != nil {
		priv = priv.WithLeafKey(pv.ownUpdate)
	}
	var commitSecret []byte
	if path != nil {
		if priv, commitSecret, err = g.processPath(c, pv, committer, priv); err != nil {
			return nil, err
		}
	}
	initSecret := cur.secrets.InitSecret
	if c.Sender.Type == SenderNewMemberCommit {
		if initSecret, err = cur.secrets.ExternalInitSecret(pv.kemOutput); err != nil {
			return nil, fmt.Errorf("%w: external init: %w", ErrProposal, err)
		}
	}
	next, ep, _, err := g.nextEpoch(pv, a, priv, initSecret, commitSecret)
	if err != nil {
		return nil, err
	}
	ep.DropJoinerSecrets()
	if c.Sender.Type == SenderNewMemberCommit {
		res.Added = append(res.Added, memberAt(next.tree, committer))
		res.SenderIdentity = memberAt(next.tree, committer).Identity
	}
	for _, l := range pv.added {
		res.Added = append(res.Added, memberAt(next.tree, l))
	}
	return &staged{res: res, next: next}, nil
}

// committerLeaf returns the committer's leaf: a member's own, checked
// with the credential validator, or for an external commit the leaf the
// joiner takes (added to pv.tree here).
func (g *Group) committerLeaf(c *FramedContent, pv *provisional) (LeafIndex, error) {
	if c.Sender.Type != SenderNewMemberCommit {
		l := LeafIndex(c.Sender.Index)
		return l, g.validateMember(g.st.tree.Leaf(l))
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

// processPath validates the commit's path leaf and decrypts the path,
// merging it into pv.tree; it returns the new private state and the
// commit secret.
func (g *Group) processPath(c *FramedContent, pv *provisional, committer LeafIndex,
	priv *PrivateTree) (*PrivateTree, []byte, error) {
	path := c.Commit.Path
	rc, err := pv.required()
	if err != nil {
		return nil, nil, err
	}
	pol := LeafPolicy{Source: SourceCommit, GroupID: pv.ctx.GroupID, Leaf: committer, Required: rc}
	if err := pv.tree.ValidateLeafNode(&path.LeafNode, pol); err != nil {
		return nil, nil, fmt.Errorf("mls: commit path leaf: %w", err)
	}
	if err := supportsExtensions(&path.LeafNode, pv.ctx.Extensions, rc); err != nil {
		return nil, nil, fmt.Errorf("%w: commit path leaf: %w", ErrProposal, err)
	}
	if c.Sender.Type == SenderMember {
		if err := sameIdentity(g.st.tree.Leaf(committer), &path.LeafNode); err != nil {
			return nil, nil, err
		}
	}
	if err := g.validateMember(&path.LeafNode); err != nil {
		return nil, nil, err
	}
	pr, err := pv.tree.ProcessUpdatePath(priv, committer, path, pv.ctx, pv.added)
	if err != nil {
		return nil, nil, err
	}
	pv.tree, pv.ctx.TreeHash = pr.Tree, pr.GroupContext.TreeHash
	return pr.Private, pr.CommitSecret, nil
}
