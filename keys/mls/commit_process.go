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
	committer := LeafIndex(c.Sender.Index)
	if c.Sender.Type == SenderNewMemberCommit {
		for _, m := range pv.removed {
			if string(m.Identity) != string(path.LeafNode.Credential.Identity) {
				return nil, fmt.Errorf("%w: external commit removes another member's leaf %d", ErrProposal, m.Leaf)
			}
		}
		if l, dup := leafWithIdentity(pv.tree, path.LeafNode.Credential.Identity); dup {
			return nil, fmt.Errorf("%w: external joiner is already member %d", ErrProposal, l)
		}
		leaf := path.LeafNode
		committer = pv.tree.AddLeaf(&leaf)
		res.Added = append(res.Added, memberAt(pv.tree, committer))
	} else if err := g.validateMember(cur.tree.Leaf(committer)); err != nil {
		return nil, err
	}
	priv := cur.priv.Pruned(pv.tree)
	if pv.ownUpdate != nil {
		priv = priv.WithLeafKey(pv.ownUpdate)
	}
	var commitSecret []byte
	if path != nil {
		rc, err := pv.required()
		if err != nil {
			return nil, err
		}
		pol := LeafPolicy{Source: SourceCommit, GroupID: pv.ctx.GroupID, Leaf: committer, Required: rc}
		if err := pv.tree.ValidateLeafNode(&path.LeafNode, pol); err != nil {
			return nil, fmt.Errorf("mls: commit path leaf: %w", err)
		}
		if err := supportsExtensions(&path.LeafNode, pv.ctx.Extensions, rc); err != nil {
			return nil, fmt.Errorf("%w: commit path leaf: %w", ErrProposal, err)
		}
		if c.Sender.Type == SenderMember {
			if err := sameIdentity(cur.tree.Leaf(committer), &path.LeafNode); err != nil {
				return nil, err
			}
		}
		if err := g.validateMember(&path.LeafNode); err != nil {
			return nil, err
		}
		pr, err := pv.tree.ProcessUpdatePath(priv, committer, path, pv.ctx, pv.added)
		if err != nil {
			return nil, err
		}
		pv.tree, priv, commitSecret = pr.Tree, pr.Private, pr.CommitSecret
		pv.ctx.TreeHash = pr.GroupContext.TreeHash
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
	for _, l := range pv.added {
		res.Added = append(res.Added, memberAt(next.tree, l))
	}
	if c.Sender.Type == SenderNewMemberCommit {
		res.SenderIdentity = memberAt(next.tree, committer).Identity
	}
	return &staged{res: res, next: next}, nil
}
