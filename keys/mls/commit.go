package mls

import (
	"fmt"
	"slices"

	"hearth/keys/mls/handshake"
	"hearth/keys/mls/message"
	"hearth/keys/mls/schedule"
	"hearth/keys/mls/treekem"
	"hearth/keys/mls/treemath"
)

// CommitOptions says what a commit does besides committing every proposal
// received in the epoch (those are always included by reference, except
// ones this member may not commit: its own Updates, Removes of itself,
// duplicates).
type CommitOptions struct {
	Add    []*message.KeyPackage
	Remove []treemath.LeafIndex
	// Extensions, if not nil, replaces the GroupContext extensions
	// (GroupContextExtensions proposal).
	Extensions message.Extensions
	PSKs       []message.PreSharedKeyID
	// UpdatePath forces a path (a fresh leaf key for the committer) even
	// when the proposals allow a path-less commit.
	UpdatePath        bool
	AuthenticatedData []byte
	// OmitTreeInWelcome leaves the ratchet_tree extension out of the
	// Welcome's GroupInfo (RFC 9420 §12.4.3.3): new members then get the
	// tree some other way (JoinOptions.RatchetTree), e.g. from the
	// GroupInfo in CommitOutput.GroupInfo, which always carries it. For
	// large groups on a post-quantum suite the tree is most of the bytes.
	OmitTreeInWelcome bool
}

// CommitOutput is what a commit produces for the hub and new members.
type CommitOutput struct {
	Commit    []byte // MLSMessage(PublicMessage), for the hub
	Welcome   []byte // MLSMessage(Welcome), nil if nobody was added
	GroupInfo []byte // MLSMessage(GroupInfo) of the new epoch, with ratchet_tree and external_pub
	Epoch     uint64 // the epoch the commit starts
	// Added and Removed are the roster changes the commit makes.
	Added, Removed []handshake.Member
}

// Result says what a processed message or applied commit did.
type Result struct {
	Kind              message.ContentType
	Epoch             uint64 // epoch after the message
	Sender            message.Sender
	SenderIdentity    []byte
	Plaintext         []byte // application messages
	AuthenticatedData []byte
	Proposal          *message.Proposal  // proposals
	Added, Removed    []handshake.Member // commits
	Updated           []treemath.LeafIndex
	// SelfRemoved: the commit removed this member; the group is inactive.
	SelfRemoved bool
	// Extensions are, for a processed commit, the GroupContext extensions
	// of the epoch it starts (also when SelfRemoved, where the group's own
	// state stays at the old epoch).
	Extensions message.Extensions
}

type pendingCommit struct {
	next   *epochState
	out    CommitOutput
	result *Result
}

// pskSecret resolves a commit's PSKs and combines them.
func (g *Group) pskSecret(cur *epochState, psks []message.PreSharedKeyID) ([]byte, error) {
	if len(psks) == 0 {
		return nil, nil
	}
	var in []schedule.PSK
	for _, id := range psks {
		var secret []byte
		ok := false
		switch id.Type {
		case message.PSKExternal:
			secret, ok = cur.externalPSKs[string(id.PSKID)]
		case message.PSKResumption:
			if string(id.PSKGroupID) == string(cur.ctx.GroupID) {
				secret, ok = cur.resumptionPSK(id.PSKEpoch)
			}
		}
		if !ok {
			return nil, fmt.Errorf("%w: type %d id %x epoch %d", ErrPSK, id.Type, id.PSKID, id.PSKEpoch)
		}
		in = append(in, schedule.PSK{ID: id.Marshal(), Secret: secret})
	}
	s, err := schedule.PSKSecret(g.s, in)
	if err != nil {
		return nil, fmt.Errorf("mls: psk secret: %w", err)
	}
	return s, nil
}

// nextEpoch runs the transcript hash and key schedule of a commit whose
// path (if any) is merged into pv.tree. With a nil confirmation tag in
// ac it sets the tag (committer); otherwise it verifies it.
func (g *Group) nextEpoch(pv *handshake.Provisional, ac *message.AuthenticatedContent, priv *treekem.PrivateTree,
	initSecret, commitSecret []byte) (*epochState, *schedule.Epoch, []byte, error) {
	cur := g.st
	ctx := handshake.NextContext(g.s, pv, cur.interim, ac)
	psk, err := g.pskSecret(cur, pv.PSKs)
	if err != nil {
		return nil, nil, nil, err
	}
	ep, err := schedule.NewEpoch(g.s, initSecret, commitSecret, psk, ctx.Marshal())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("mls: key schedule: %w", err)
	}
	if ac.Auth.ConfirmationTag == nil {
		if ac.Auth.ConfirmationTag, err = ep.ConfirmationTag(ctx.ConfirmedTranscriptHash); err != nil {
			return nil, nil, nil, fmt.Errorf("mls: confirmation tag: %w", err)
		}
	} else if !ep.VerifyConfirmationTag(ctx.ConfirmedTranscriptHash, ac.Auth.ConfirmationTag) {
		return nil, nil, nil, fmt.Errorf("%w: confirmation tag", message.ErrAuth)
	}
	next, err := newEpochState(g.s, g.cfg, ctx, pv.Tree, priv, ep, ac.Auth.ConfirmationTag, cur)
	if err != nil {
		return nil, nil, nil, err
	}
	return next, ep, psk, nil
}

// commitProposals gathers the cached proposals this member may commit by
// reference, then opts' proposals by value. Cached proposals that cannot
// go together are left out, as RFC 9420 §12.2 lets a committer do: its
// own Updates, Removes of itself or of blank leaves, a second Update of a
// leaf, duplicate Removes, Adds of a signature key already present,
// PSKs it cannot resolve or already has, and a cached
// GroupContextExtensions when opts brings its own.
func (g *Group) commitProposals(opts CommitOptions) []handshake.Resolved {
	f := &proposalFilter{g: g, self: uint32(g.st.priv.Self()), removed: map[treemath.LeafIndex]bool{},
		updated: map[uint32]bool{}, sigKeys: map[string]bool{}, psks: map[string]bool{}, gce: opts.Extensions != nil}
	for _, l := range g.st.tree.Members() {
		f.sigKeys[string(g.st.tree.Leaf(l).SignatureKey)] = true
	}
	// A removal wins over an Update of the same leaf.
	f.removing = map[treemath.LeafIndex]bool{}
	for _, l := range opts.Remove {
		f.removing[l] = true
	}
	for _, c := range g.st.proposals {
		if c.Proposal.Type == message.ProposalRemove && uint32(c.Proposal.Remove) != f.self {
			f.removing[c.Proposal.Remove] = true
		}
	}
	var out []handshake.Resolved
	for _, c := range g.st.proposals {
		if f.keep(c.Proposal, c.Sender) {
			out = append(out, handshake.Resolved{Proposal: c.Proposal, Sender: c.Sender, Ref: c.Ref})
		}
	}
	me := message.Sender{Type: message.SenderMember, Index: f.self}
	if opts.Extensions != nil {
		gce := &message.Proposal{Type: message.ProposalGroupContextExtensions, GroupContextExtensions: opts.Extensions}
		out = append(out, handshake.Resolved{Proposal: gce, Sender: me})
	}
	for _, l := range opts.Remove {
		if !f.removed[l] {
			f.removed[l] = true
			out = append(out, handshake.Resolved{Proposal: &message.Proposal{Type: message.ProposalRemove, Remove: l}, Sender: me})
		}
	}
	for _, kp := range opts.Add {
		out = append(out, handshake.Resolved{Proposal: &message.Proposal{Type: message.ProposalAdd, Add: kp}, Sender: me})
	}
	for i := range opts.PSKs {
		out = append(out, handshake.Resolved{Proposal: &message.Proposal{Type: message.ProposalPSK, PSK: &opts.PSKs[i]}, Sender: me})
	}
	return out
}

// proposalFilter decides which cached proposals a commit includes.
type proposalFilter struct {
	g             *Group
	self          uint32
	removed       map[treemath.LeafIndex]bool
	removing      map[treemath.LeafIndex]bool // leaves some Remove in the commit targets
	updated       map[uint32]bool
	sigKeys, psks map[string]bool
	gce           bool
}

func (f *proposalFilter) keep(p *message.Proposal, sender message.Sender) bool {
	switch p.Type {
	case message.ProposalUpdate:
		if sender.Index == f.self || f.updated[sender.Index] || f.removing[treemath.LeafIndex(sender.Index)] {
			return false
		}
		f.updated[sender.Index] = true
	case message.ProposalRemove:
		if uint32(p.Remove) == f.self || f.removed[p.Remove] || f.g.st.tree.Leaf(p.Remove) == nil {
			return false
		}
		f.removed[p.Remove] = true
	case message.ProposalAdd:
		k := string(p.Add.LeafNode.SignatureKey)
		if f.sigKeys[k] {
			return false
		}
		f.sigKeys[k] = true
	case message.ProposalPSK:
		id := *p.PSK
		id.Nonce = nil
		k := string(id.Marshal())
		if _, err := f.g.pskSecret(f.g.st, []message.PreSharedKeyID{*p.PSK}); err != nil || f.psks[k] {
			return false
		}
		f.psks[k] = true
	case message.ProposalGroupContextExtensions:
		if f.gce {
			return false
		}
		f.gce = true
	}
	return true
}

// Commit creates a commit of the epoch's proposals and opts, signed as a
// PublicMessage. The group does not change until ApplyPendingCommit
// (the hub accepted it) or DiscardPendingCommit (the hub refused it).
func (g *Group) Commit(opts CommitOptions) (*CommitOutput, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	if g.pending != nil {
		return nil, fmt.Errorf("%w: a commit is already pending", ErrPending)
	}
	cur := g.st
	me := message.Sender{Type: message.SenderMember, Index: uint32(cur.priv.Self())}
	props := g.commitProposals(opts)
	pv, err := g.view().ApplyProposals(props, me)
	if err != nil {
		return nil, fmt.Errorf("mls: commit: %w", err)
	}
	b, err := g.buildCommit(pv, props, opts.UpdatePath || pv.PathRequired)
	if err != nil {
		return nil, err
	}
	content := &message.FramedContent{GroupID: cur.ctx.GroupID, Epoch: cur.ctx.Epoch, Sender: me,
		AuthenticatedData: nonNil(opts.AuthenticatedData), ContentType: message.ContentCommit, Commit: b.commit}
	ac, err := message.SignContent(g.s, g.signer, message.WirePublicMessage, content, &cur.ctx)
	if err != nil {
		return nil, err
	}
	next, ep, psk, err := g.nextEpoch(pv, ac, b.priv, cur.secrets.InitSecret, b.commitSecret)
	if err != nil {
		return nil, fmt.Errorf("mls: commit: %w", err)
	}
	defer ep.DropJoinerSecrets()
	pm, err := message.NewPublicMessage(g.s, ac, cur.secrets.MembershipKey, &cur.ctx)
	if err != nil {
		return nil, err
	}
	commit := &message.MLSMessage{WireFormat: message.WirePublicMessage, PublicMessage: pm}
	out := &CommitOutput{Commit: commit.Marshal(), Epoch: next.ctx.Epoch}
	if err := g.commitOutputs(out, next, ep, psk, ac.Auth.ConfirmationTag, pv, b.pathSecrets, opts.OmitTreeInWelcome); err != nil {
		return nil, err
	}
	res := &Result{Kind: message.ContentCommit, Epoch: next.ctx.Epoch, Sender: me,
		Updated: pv.Updated, Removed: pv.Removed, Added: out.Added,
		SenderIdentity: handshake.MemberAt(cur.tree, cur.priv.Self()).Identity}
	g.pending = &pendingCommit{next: next, out: *out, result: res}
	return out, nil
}

// builtCommit is a commit's body with the committer's new private state.
type builtCommit struct {
	commit       *message.Commit
	priv         *treekem.PrivateTree
	commitSecret []byte
	pathSecrets  map[treemath.NodeIndex][]byte
}

// buildCommit lists the proposals and, if withPath, generates the path
// (merging it into pv.tree).
func (g *Group) buildCommit(pv *handshake.Provisional, props []handshake.Resolved, withPath bool) (*builtCommit, error) {
	self := g.st.priv.Self()
	b := &builtCommit{commit: &message.Commit{}, priv: g.st.priv.Pruned(pv.Tree)}
	for _, r := range props {
		if r.Ref != nil {
			b.commit.Proposals = append(b.commit.Proposals, message.ProposalOrRef{Reference: r.Ref})
		} else {
			b.commit.Proposals = append(b.commit.Proposals, message.ProposalOrRef{Proposal: r.Proposal})
		}
	}
	if !withPath {
		return b, nil
	}
	res, err := pv.Tree.GenerateUpdatePath(g.cfg.Rand, self, *pv.Tree.Leaf(self), g.signer, pv.GroupContext, pv.Added)
	if err != nil {
		return nil, fmt.Errorf("mls: commit path: %w", err)
	}
	pv.Tree, pv.GroupContext.TreeHash = res.Tree, res.GroupContext.TreeHash
	b.priv, b.commitSecret, b.pathSecrets, b.commit.Path = res.Private, res.CommitSecret, res.PathSecrets, res.Path
	return b, nil
}

// commitOutputs adds the GroupInfo, the Welcome (if members were added)
// and the roster change to out. With omitTree, the Welcome's GroupInfo is
// a second one, signed without the ratchet_tree extension.
func (g *Group) commitOutputs(out *CommitOutput, next *epochState, ep *schedule.Epoch, psk, tag []byte,
	pv *handshake.Provisional, pathSecrets map[treemath.NodeIndex][]byte, omitTree bool) error {
	gi, err := g.groupInfo(next, ep, tag, true)
	if err != nil {
		return err
	}
	out.GroupInfo = (&message.MLSMessage{WireFormat: message.WireGroupInfo, GroupInfo: gi}).Marshal()
	if len(pv.Added) > 0 {
		wgi := gi
		if omitTree {
			if wgi, err = g.groupInfo(next, ep, tag, false); err != nil {
				return err
			}
		}
		if out.Welcome, err = g.welcome(wgi, ep, psk, pv, pathSecrets); err != nil {
			return err
		}
	}
	for _, l := range pv.Added {
		out.Added = append(out.Added, handshake.MemberAt(next.tree, l))
	}
	out.Removed = pv.Removed
	return nil
}

// GroupInfo returns a signed MLSMessage(GroupInfo) of the current epoch
// carrying the ratchet_tree and external_pub extensions. A group's
// creator gives the one of epoch 0 to the hub, which starts its public
// state from it (NewPublicGroup); any member may give a newer one to a
// server that lost or never had the state.
func (g *Group) GroupInfo() ([]byte, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	tag, err := g.st.secrets.ConfirmationTag(g.st.ctx.ConfirmedTranscriptHash)
	if err != nil {
		return nil, fmt.Errorf("mls: group info: %w", err)
	}
	gi, err := g.groupInfo(g.st, g.st.secrets, tag, true)
	if err != nil {
		return nil, err
	}
	return (&message.MLSMessage{WireFormat: message.WireGroupInfo, GroupInfo: gi}).Marshal(), nil
}

// groupInfo signs the GroupInfo of epoch next, carrying the external
// public key so devices can join by external commit and, withTree, the
// ratchet tree.
func (g *Group) groupInfo(next *epochState, ep *schedule.Epoch, tag []byte, withTree bool) (*message.GroupInfo, error) {
	_, extPub, err := ep.ExternalKeyPair()
	if err != nil {
		return nil, fmt.Errorf("mls: external key: %w", err)
	}
	var ext message.Extensions
	if withTree {
		ext = append(ext, message.Extension{Type: message.ExtRatchetTree, Data: next.tree.Marshal()})
	}
	ext = append(ext, message.Extension{Type: message.ExtExternalPub, Data: (&message.ExternalPub{PublicKey: extPub}).Marshal()})
	gi := &message.GroupInfo{GroupContext: next.ctx, ConfirmationTag: tag, Signer: next.priv.Self(), Extensions: ext}
	if err := gi.Sign(g.s, g.signer); err != nil {
		return nil, err
	}
	return gi, nil
}

func (g *Group) welcome(gi *message.GroupInfo, ep *schedule.Epoch, psk []byte, pv *handshake.Provisional,
	pathSecrets map[treemath.NodeIndex][]byte) ([]byte, error) {
	self := gi.Signer
	var members []message.WelcomeMember
	for i, l := range pv.Added {
		m := message.WelcomeMember{KeyPackage: pv.AddKeyPackages[i]}
		if pathSecrets != nil {
			m.PathSecret = pathSecrets[treemath.CommonAncestor(self.NodeIndex(), l.NodeIndex())]
		}
		members = append(members, m)
	}
	w, err := message.SealWelcome(g.s, gi, ep.JoinerSecret, psk, pv.PSKs, members)
	if err != nil {
		return nil, err
	}
	return (&message.MLSMessage{WireFormat: message.WireWelcome, Welcome: w}).Marshal(), nil
}

// PendingCommit returns the output of the pending commit, if any.
func (g *Group) PendingCommit() (*CommitOutput, bool) {
	if g.pending == nil {
		return nil, false
	}
	out := g.pending.out
	return &out, true
}

// ApplyPendingCommit moves the group to the epoch of its pending commit,
// once the hub has accepted it.
func (g *Group) ApplyPendingCommit() (*Result, error) {
	if g.pending == nil {
		return nil, fmt.Errorf("%w: no pending commit", ErrPending)
	}
	res := g.pending.result
	g.retire(g.pending.next)
	g.pending = nil
	return res, nil
}

// DiscardPendingCommit forgets the pending commit (the hub refused it as
// stale); the member then processes the commits it missed and commits
// again. Processing another member's commit for the same epoch discards
// it too.
func (g *Group) DiscardPendingCommit() {
	if g.pending != nil {
		g.pending.next.keys.Tree.Clear()
		g.pending.next.secrets.Clear()
		g.pending = nil
	}
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return slices.Clone(b)
}
