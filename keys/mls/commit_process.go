package mls

import (
	"fmt"
	"slices"

	"hearth/keys/mls/handshake"
	"hearth/keys/mls/message"
	"hearth/keys/mls/treekem"
	"hearth/keys/mls/treemath"
)

// processCommit stages a verified commit of another member or of an
// external joiner (RFC 9420 §12.4.2). The signature and, for members, the
// membership tag are already checked.
func (g *Group) processCommit(a *message.AuthenticatedContent, res *Result) (*staged, error) {
	c := &a.Content
	cur := g.st
	v := g.view()
	pv, committer, err := v.StageCommit(c)
	if err != nil {
		return nil, err
	}
	res.Removed, res.Updated, res.Epoch = pv.Removed, pv.Updated, pv.GroupContext.Epoch
	res.Extensions = slices.Clone(pv.GroupContext.Extensions)
	if pv.SelfRemoved {
		res.SelfRemoved = true
		for _, l := range pv.Added {
			res.Added = append(res.Added, handshake.MemberAt(pv.Tree, l))
		}
		return &staged{res: res, removed: true}, nil
	}
	priv := cur.priv.Pruned(pv.Tree)
	if pv.OwnUpdateKey != nil {
		priv = priv.WithLeafKey(pv.OwnUpdateKey)
	}
	var commitSecret []byte
	if c.Commit.Path != nil {
		if priv, commitSecret, err = g.processPath(v, c, pv, committer, priv); err != nil {
			return nil, err
		}
	}
	initSecret := cur.secrets.InitSecret
	if c.Sender.Type == message.SenderNewMemberCommit {
		if initSecret, err = cur.secrets.ExternalInitSecret(pv.KEMOutput); err != nil {
			return nil, fmt.Errorf("%w: external init: %w", handshake.ErrProposal, err)
		}
	}
	next, ep, _, err := g.nextEpoch(pv, a, priv, initSecret, commitSecret)
	if err != nil {
		return nil, err
	}
	ep.DropJoinerSecrets()
	if c.Sender.Type == message.SenderNewMemberCommit {
		res.Added = append(res.Added, handshake.MemberAt(next.tree, committer))
		res.SenderIdentity = handshake.MemberAt(next.tree, committer).Identity
	}
	for _, l := range pv.Added {
		res.Added = append(res.Added, handshake.MemberAt(next.tree, l))
	}
	return &staged{res: res, next: next}, nil
}

// processPath validates the commit's path leaf and decrypts the path,
// merging it into pv.tree; it returns the new private state and the
// commit secret.
func (g *Group) processPath(v *handshake.View, c *message.FramedContent, pv *handshake.Provisional, committer treemath.LeafIndex,
	priv *treekem.PrivateTree) (*treekem.PrivateTree, []byte, error) {
	if err := v.CheckPathLeaf(c, pv, committer); err != nil {
		return nil, nil, err
	}
	pr, err := pv.Tree.ProcessUpdatePath(priv, committer, c.Commit.Path, pv.GroupContext, pv.Added)
	if err != nil {
		return nil, nil, err
	}
	pv.Tree, pv.GroupContext.TreeHash = pr.Tree, pr.GroupContext.TreeHash
	return pr.Private, pr.CommitSecret, nil
}
