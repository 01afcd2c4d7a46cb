package mls

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"hearth/keys/mls/handshake"
	"hearth/keys/mls/message"
	"hearth/keys/mls/schedule"
	"hearth/keys/mls/suite"
	"hearth/keys/mls/treekem"
	"hearth/keys/mls/treemath"
)

// PublicGroup is the public state of an MLS group: what a server that
// holds no group secret can know and keep in step with the members. It is
// the GroupContext, the ratchet tree (public keys, credentials, parent
// hashes), the interim transcript hash, and the proposals received in
// the current epoch (for commits that include them by reference).
//
// The hub holds one per conversation and advances it with every commit it
// accepts: Apply verifies a commit against the state and returns the
// next state with the roster change derived from the commit. A message
// never modifies a PublicGroup: Apply and AddProposal return a new one
// and leave the receiver as it was, so a refused message changes nothing
// and the caller installs the new state only once it has stored it. A
// PublicGroup is not safe for concurrent use (its tree memoizes its
// encoding).
//
// Without the epoch's secrets a server cannot check a member's
// membership tag, a commit's confirmation tag, the encrypted path secrets
// of an UpdatePath, an ExternalInit's KEM output, or that a PSK exists;
// see docs/e2ee.md ("The hub's public state and verification").
type PublicGroup struct {
	s         *suite.Suite
	ctx       message.GroupContext
	tree      *treekem.RatchetTree
	interim   []byte                     // interim transcript hash of the epoch
	proposals []handshake.CachedProposal // received this epoch, in order
}

// PublicOptions are the server's policies for the messages it verifies.
type PublicOptions struct {
	// Validator checks every credential that enters or stays in the tree
	// through a verified message: each member of the first GroupInfo,
	// added KeyPackages, Update leaves, the committer's leaf and its new
	// path leaf, an external joiner. Required.
	Validator handshake.CredentialValidator
	// Now, if not zero, must lie within the lifetime of every added
	// KeyPackage's leaf.
	Now time.Time
}

func (o PublicOptions) check() error {
	if o.Validator == nil {
		return fmt.Errorf("%w: PublicOptions.Validator is required", handshake.ErrUnsupported)
	}
	return nil
}

// CommitChange is what a verified commit does to the group, derived from
// the commit itself (its proposals, by value and by reference, and its
// path).
type CommitChange struct {
	// Epoch is the epoch the commit starts.
	Epoch uint64
	// Committer is the committer's leaf after the commit; for an external
	// commit, the joiner's new leaf.
	Committer handshake.Member
	// External: a new member joined by external commit (new_member_commit).
	External bool
	// Added are the leaves added: by Add proposals, in proposal order,
	// then the external joiner.
	Added []handshake.Member
	// Removed are the leaves removed, as they were before the commit.
	Removed []handshake.Member
	// Updated are the leaves replaced by Update proposals.
	Updated []handshake.Member
	// Path: the commit carried an UpdatePath (the committer's leaf and
	// its direct path have new keys).
	Path bool
	// ExtensionsChanged: a GroupContextExtensions proposal replaced the
	// GroupContext extensions with Extensions.
	ExtensionsChanged bool
	Extensions        message.Extensions
	// ByReference counts the proposals included by reference.
	ByReference int
	// AuthenticatedData of the commit (signed by the committer).
	AuthenticatedData []byte
}

// ProposalInfo describes a verified proposal cached by AddProposal.
type ProposalInfo struct {
	Ref      []byte
	Sender   message.Sender
	Proposal *message.Proposal
}

// NewPublicGroup starts the public state from an MLSMessage(GroupInfo),
// such as the one a group's creator signs for epoch 0 (Group.GroupInfo) or
// any later one a commit brings. The ratchet tree is the GroupInfo's
// ratchet_tree extension or, if it has none, ratchetTree (an encoded
// ratchet_tree extension value). It checks what a joiner checks without
// secrets: the GroupInfo's signature by its signer's leaf, the tree hash
// against its GroupContext, the whole tree (leaf signatures, parent
// hashes, unmerged leaves, unique keys) and every member's credential.
// The confirmation tag, which needs the epoch's secrets, is taken as
// given: it only feeds the interim transcript hash.
func NewPublicGroup(groupInfo, ratchetTree []byte, opts PublicOptions) (*PublicGroup, error) {
	const op = "mls: public group"
	if err := opts.check(); err != nil {
		return nil, err
	}
	gi, s, err := parseGroupInfo(groupInfo)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if len(gi.ConfirmationTag) != s.Nh() {
		return nil, fmt.Errorf("%s: %w: confirmation tag is %d bytes", op, message.ErrMalformed, len(gi.ConfirmationTag))
	}
	tree, err := handshake.VerifyGroupInfoTree(s, gi, ratchetTree, opts.Validator)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return &PublicGroup{s: s, ctx: gi.GroupContext, tree: tree,
		interim: schedule.InterimTranscriptHash(s, gi.GroupContext.ConfirmedTranscriptHash, gi.ConfirmationTag)}, nil
}

func (p *PublicGroup) view(opts PublicOptions) *handshake.View {
	return &handshake.View{Suite: p.s, GroupContext: &p.ctx, Tree: p.tree, Proposals: p.proposals,
		Validator: opts.Validator, Now: opts.Now}
}

// readHandshake decodes msg and verifies what is public about a handshake
// message of the current epoch: an MLSMessage(PublicMessage) of content
// type want, this group and epoch, from a sender allowed to send it,
// signed by that sender's key over the current GroupContext. The
// membership tag of a member's message is not checked (it needs the
// epoch's membership_key).
func (p *PublicGroup) readHandshake(v *handshake.View, msg []byte, want message.ContentType) (*message.AuthenticatedContent, error) {
	var m message.MLSMessage
	if err := m.Unmarshal(msg); err != nil {
		return nil, err
	}
	if m.WireFormat != message.WirePublicMessage {
		return nil, fmt.Errorf("%w: wire format %d, want a PublicMessage", message.ErrMalformed, m.WireFormat)
	}
	c := &m.PublicMessage.Content
	if c.ContentType != want {
		return nil, fmt.Errorf("%w: content type %d, want %d", message.ErrMalformed, c.ContentType, want)
	}
	if err := handshake.CheckEpoch(&p.ctx, c.GroupID, c.Epoch); err != nil {
		return nil, err
	}
	if want == message.ContentCommit && c.Sender.Type != message.SenderMember && c.Sender.Type != message.SenderNewMemberCommit {
		return nil, fmt.Errorf("%w: commit from sender type %d", handshake.ErrSender, c.Sender.Type)
	}
	key, err := v.SenderKey(c)
	if err != nil {
		return nil, err
	}
	a := m.PublicMessage.AuthenticatedContent()
	if err := a.VerifySignature(p.s, key, &p.ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// AddProposal verifies a proposal sent as MLSMessage(PublicMessage) in
// the current epoch (sender, signature, the proposal's own rules as a
// member checks them) and returns the state with the proposal cached, so
// that a commit of this epoch may include it by reference. p is not
// changed.
func (p *PublicGroup) AddProposal(msg []byte, opts PublicOptions) (*PublicGroup, *ProposalInfo, error) {
	const op = "mls: public proposal"
	if err := opts.check(); err != nil {
		return nil, nil, err
	}
	v := p.view(opts)
	a, err := p.readHandshake(v, msg, message.ContentProposal)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", op, err)
	}
	cp, err := v.CheckProposal(a)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", op, err)
	}
	next := *p
	next.proposals = append(slices.Clip(p.proposals), *cp)
	return &next, &ProposalInfo{Ref: cp.Ref, Sender: cp.Sender, Proposal: cp.Proposal}, nil
}

// Apply verifies a commit sent as MLSMessage(PublicMessage) against the
// state and returns the state of the epoch it starts, with the change it
// makes. It checks: the group id and epoch; the sender (a member's
// non-blank leaf, or new_member_commit); the signature over the current
// GroupContext with the sender's key; every proposal, by value or by
// reference to one cached by AddProposal, and the list (RFC 9420 §12.2,
// with the external-commit rules of §12.4.3.2); that a path is present
// when the proposals require one; the committer's credential; the path's
// leaf (§7.3, source commit, same identity), its public keys, its
// parent-hash chain (§7.9.2), the number of ciphertexts per node and
// their sizes, and the size of an ExternalInit's kem_output. It
// then computes the new tree hash, the confirmed transcript hash (from
// the commit's content and signature) and the interim one (from its
// confirmation tag). The membership and confirmation tags and the
// ciphertexts themselves are not checked: they need the epoch's secrets.
// p is not changed; on error nothing is returned.
func (p *PublicGroup) Apply(msg []byte, opts PublicOptions) (*PublicGroup, *CommitChange, error) {
	const op = "mls: public commit"
	if err := opts.check(); err != nil {
		return nil, nil, err
	}
	next, ch, err := p.apply(msg, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", op, err)
	}
	return next, ch, nil
}

func (p *PublicGroup) apply(msg []byte, opts PublicOptions) (*PublicGroup, *CommitChange, error) {
	v := p.view(opts)
	a, err := p.readHandshake(v, msg, message.ContentCommit)
	if err != nil {
		return nil, nil, err
	}
	c := &a.Content
	if len(a.Auth.ConfirmationTag) != p.s.Nh() {
		return nil, nil, fmt.Errorf("%w: confirmation tag is %d bytes", message.ErrMalformed, len(a.Auth.ConfirmationTag))
	}
	pv, committer, err := v.StageCommit(c)
	if err != nil {
		return nil, nil, err
	}
	if c.Sender.Type == message.SenderNewMemberCommit && len(pv.KEMOutput) != p.s.Nenc() {
		return nil, nil, fmt.Errorf("%w: ExternalInit kem_output is %d bytes", handshake.ErrProposal, len(pv.KEMOutput))
	}
	if path := c.Commit.Path; path != nil {
		if err := v.CheckPathLeaf(c, pv, committer); err != nil {
			return nil, nil, err
		}
		pr, err := pv.Tree.VerifyUpdatePath(committer, path, pv.GroupContext, pv.Added)
		if err != nil {
			return nil, nil, err
		}
		pv.Tree, pv.GroupContext.TreeHash = pr.Tree, pr.GroupContext.TreeHash
	}
	ctx := handshake.NextContext(p.s, pv, p.interim, a)
	next := &PublicGroup{s: p.s, ctx: ctx, tree: pv.Tree,
		interim: schedule.InterimTranscriptHash(p.s, ctx.ConfirmedTranscriptHash, a.Auth.ConfirmationTag)}
	return next, p.change(c, pv, next.tree, committer), nil
}

// change describes a staged commit.
func (p *PublicGroup) change(c *message.FramedContent, pv *handshake.Provisional, tree *treekem.RatchetTree,
	committer treemath.LeafIndex) *CommitChange {
	ch := &CommitChange{Epoch: pv.GroupContext.Epoch, Committer: handshake.MemberAt(tree, committer),
		External: c.Sender.Type == message.SenderNewMemberCommit, Removed: pv.Removed, Path: c.Commit.Path != nil,
		ExtensionsChanged: pv.ExtensionsChanged, AuthenticatedData: c.AuthenticatedData}
	if pv.ExtensionsChanged {
		ch.Extensions = slices.Clone(pv.GroupContext.Extensions)
	}
	for _, l := range pv.Added {
		ch.Added = append(ch.Added, handshake.MemberAt(tree, l))
	}
	if ch.External {
		ch.Added = append(ch.Added, ch.Committer)
	}
	for _, l := range pv.Updated {
		ch.Updated = append(ch.Updated, handshake.MemberAt(tree, l))
	}
	for _, por := range c.Commit.Proposals {
		if por.Proposal == nil {
			ch.ByReference++
		}
	}
	return ch
}

// VerifyGroupInfo checks that an MLSMessage(GroupInfo) describes this
// state: its GroupContext is the state's, it is signed by its signer's
// leaf in the state's tree, its confirmation tag is the one of the commit
// that started the epoch (the interim transcript hashes agree), and its
// ratchet_tree extension, if any, is the state's tree. The hub keeps such
// a GroupInfo for external joins; external_pub cannot be checked without
// the epoch's secrets.
func (p *PublicGroup) VerifyGroupInfo(groupInfo []byte) error {
	const op = "mls: public group info"
	gi, _, err := parseGroupInfo(groupInfo)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if !bytes.Equal(gi.GroupContext.Marshal(), p.ctx.Marshal()) {
		if err := handshake.CheckEpoch(&p.ctx, gi.GroupContext.GroupID, gi.GroupContext.Epoch); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		return fmt.Errorf("%s: %w: GroupContext differs from the group's", op, treekem.ErrTree)
	}
	signer := p.tree.Leaf(gi.Signer)
	if signer == nil {
		return fmt.Errorf("%s: %w: signer %d is not a member", op, handshake.ErrSender, gi.Signer)
	}
	if err := gi.Verify(p.s, signer.SignatureKey); err != nil {
		return fmt.Errorf("%s: %w: %w", op, message.ErrAuth, err)
	}
	if !bytes.Equal(schedule.InterimTranscriptHash(p.s, p.ctx.ConfirmedTranscriptHash, gi.ConfirmationTag), p.interim) {
		return fmt.Errorf("%s: %w: confirmation tag is not the commit's", op, message.ErrAuth)
	}
	if raw, ok := gi.Extensions.Find(message.ExtRatchetTree); ok && !bytes.Equal(raw, p.tree.Marshal()) {
		return fmt.Errorf("%s: %w: ratchet tree differs from the group's", op, treekem.ErrTree)
	}
	return nil
}

// Epoch returns the current epoch.
func (p *PublicGroup) Epoch() uint64 { return p.ctx.Epoch }

// GroupID returns the group id.
func (p *PublicGroup) GroupID() []byte { return slices.Clone(p.ctx.GroupID) }

// Suite returns the group's cipher suite.
func (p *PublicGroup) Suite() *suite.Suite { return p.s }

// GroupContext returns a copy of the current GroupContext.
func (p *PublicGroup) GroupContext() message.GroupContext { return p.ctx }

// Extensions returns the GroupContext extensions.
func (p *PublicGroup) Extensions() message.Extensions { return slices.Clone(p.ctx.Extensions) }

// TreeHash returns the tree hash of the current tree.
func (p *PublicGroup) TreeHash() []byte { return slices.Clone(p.ctx.TreeHash) }

// InterimTranscriptHash returns the epoch's interim transcript hash.
func (p *PublicGroup) InterimTranscriptHash() []byte { return slices.Clone(p.interim) }

// RatchetTree returns the encoded ratchet_tree extension value of the
// current tree (for a joiner's JoinOptions.RatchetTree). The bytes are
// memoized: do not modify them.
func (p *PublicGroup) RatchetTree() []byte { return p.tree.Marshal() }

// Members returns every non-blank leaf.
func (p *PublicGroup) Members() []handshake.Member {
	var out []handshake.Member
	for _, l := range p.tree.Members() {
		out = append(out, handshake.MemberAt(p.tree, l))
	}
	return out
}

// LeafOf returns the leaf of the member with credential identity id.
func (p *PublicGroup) LeafOf(id []byte) (treemath.LeafIndex, bool) {
	return handshake.LeafWithIdentity(p.tree, id)
}

// Proposals returns the proposals cached in this epoch, in order.
func (p *PublicGroup) Proposals() []ProposalInfo {
	var out []ProposalInfo
	for _, c := range p.proposals {
		out = append(out, ProposalInfo{Ref: c.Ref, Sender: c.Sender, Proposal: c.Proposal})
	}
	return out
}
