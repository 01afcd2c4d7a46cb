package mls

import (
	"bytes"
	"fmt"
	"io"
	"maps"

	"hearth/keys/mls/handshake"
	"hearth/keys/mls/message"
	"hearth/keys/mls/schedule"
	"hearth/keys/mls/suite"
	"hearth/keys/mls/treekem"
)

// GroupOptions tune NewGroup.
type GroupOptions struct {
	// Extensions of the GroupContext (e.g. required_capabilities, or
	// Hearth's private-use group metadata).
	Extensions message.Extensions
	// KeyPackage options for the creator's leaf (capabilities, leaf
	// extensions, lifetime).
	Leaf message.KeyPackageOptions
}

// NewGroup creates a one-member group at epoch 0 (RFC 9420 §11) with the
// creator's credential cred.
func NewGroup(cfg Config, s *suite.Suite, groupID []byte, signer *suite.Signer, cred message.Credential, opts GroupOptions) (*Group, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if opts.Leaf.Now.IsZero() {
		opts.Leaf.Now = cfg.Now()
	}
	kp, kpPriv, err := message.NewKeyPackage(s, cfg.Rand, signer, cred, opts.Leaf)
	if err != nil {
		return nil, err
	}
	g := &Group{cfg: cfg, s: s, signer: signer}
	if err := g.validateMember(&kp.LeafNode); err != nil {
		return nil, err
	}
	ext := opts.Extensions
	if ext == nil {
		ext = message.Extensions{}
	}
	rc, _, err := ext.RequiredCapabilities()
	if err != nil {
		return nil, fmt.Errorf("mls: new group: %w", err)
	}
	if err := handshake.SupportsExtensions(&kp.LeafNode, ext, rc); err != nil {
		return nil, fmt.Errorf("%w: creator: %w", handshake.ErrProposal, err)
	}
	tree := treekem.NewOneMemberTree(s, &kp.LeafNode)
	ctx := message.GroupContext{Version: message.MLS10, CipherSuite: s.ID(), GroupID: bytes.Clone(groupID), Epoch: 0,
		TreeHash: tree.TreeHash(), ConfirmedTranscriptHash: []byte{}, Extensions: ext}
	initSecret := make([]byte, s.Nh())
	if _, err := io.ReadFull(cfg.Rand, initSecret); err != nil {
		return nil, fmt.Errorf("mls: init secret: %w", err)
	}
	ep, err := schedule.NewEpoch(s, initSecret, nil, nil, ctx.Marshal())
	clear(initSecret)
	if err != nil {
		return nil, fmt.Errorf("mls: key schedule: %w", err)
	}
	tag, err := ep.ConfirmationTag(ctx.ConfirmedTranscriptHash)
	if err != nil {
		return nil, err
	}
	ep.DropJoinerSecrets()
	if g.st, err = newEpochState(s, cfg, ctx, tree, treekem.NewPrivateTree(0, kpPriv.EncryptionKey), ep, tag, nil); err != nil {
		return nil, err
	}
	return g, nil
}

// JoinOptions tune joining from a Welcome.
type JoinOptions struct {
	// RatchetTree is the encoded tree (RatchetTreeNodes) when the Welcome's
	// GroupInfo carries no ratchet_tree extension.
	RatchetTree []byte
	// ExternalPSKs by PSK id, for Welcomes that use them.
	ExternalPSKs map[string][]byte
}

// WelcomeKeyPackageRefs returns the KeyPackage references a Welcome is
// addressed to, so a client can find which of its KeyPackages to use.
func WelcomeKeyPackageRefs(welcome []byte) ([][]byte, error) {
	var m message.MLSMessage
	if err := m.Unmarshal(welcome); err != nil {
		return nil, err
	}
	if m.Welcome == nil {
		return nil, fmt.Errorf("%w: not a Welcome", message.ErrMalformed)
	}
	var out [][]byte
	for _, s := range m.Welcome.Secrets {
		out = append(out, s.NewMember)
	}
	return out, nil
}

// JoinWelcome joins from an MLSMessage(Welcome) with whichever of this
// device's KeyPackages it names: lookup returns the private bundle (with
// its KeyPackage) stored for a KeyPackage reference, or an error if the
// device has none. It also returns the reference used, so the client can
// delete that bundle (unless last resort).
func JoinWelcome(cfg Config, welcome []byte, lookup func(ref []byte) (*message.KeyPackagePrivate, error),
	opts JoinOptions) (*Group, []byte, error) {
	refs, err := WelcomeKeyPackageRefs(welcome)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: join: %w", err)
	}
	for _, ref := range refs {
		priv, err := lookup(ref)
		if err != nil || priv == nil || priv.KeyPackage == nil {
			continue
		}
		g, err := JoinFromWelcome(cfg, welcome, priv.KeyPackage, priv, opts)
		return g, ref, err
	}
	return nil, nil, fmt.Errorf("%w: join: the Welcome names none of this device's KeyPackages", message.ErrMalformed)
}

// JoinFromWelcome joins a group from an MLSMessage(Welcome) addressed to
// kp, whose private parts are kpPriv (RFC 9420 §12.4.3.1). Every member
// of the tree is checked with cfg.Validator.
func JoinFromWelcome(cfg Config, welcome []byte, kp *message.KeyPackage, kpPriv *message.KeyPackagePrivate, opts JoinOptions) (*Group, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	var m message.MLSMessage
	if err := m.Unmarshal(welcome); err != nil {
		return nil, fmt.Errorf("mls: join: %w", err)
	}
	if m.Welcome == nil {
		return nil, fmt.Errorf("%w: join: not a Welcome", message.ErrMalformed)
	}
	s, err := suite.Lookup(m.Welcome.CipherSuite)
	if err != nil {
		return nil, fmt.Errorf("mls: join: %w", err)
	}
	signer, err := kpPriv.Signer()
	if err != nil {
		return nil, fmt.Errorf("mls: join: %w", err)
	}
	g := &Group{cfg: cfg, s: s, signer: signer}
	gs, err := message.OpenGroupSecrets(s, m.Welcome, kp, kpPriv.InitKey)
	if err != nil {
		return nil, fmt.Errorf("mls: join: %w", err)
	}
	g.st = &epochState{externalPSKs: maps.Clone(opts.ExternalPSKs)}
	if g.st.externalPSKs == nil {
		g.st.externalPSKs = map[string][]byte{}
	}
	psk, err := g.pskSecret(g.st, gs.PSKs)
	if err != nil {
		return nil, fmt.Errorf("mls: join: %w", err)
	}
	gi, err := message.OpenGroupInfo(s, m.Welcome, gs.JoinerSecret, psk)
	if err != nil {
		return nil, fmt.Errorf("mls: join: %w", err)
	}
	tree, err := g.joinTree(gi, opts.RatchetTree)
	if err != nil {
		return nil, fmt.Errorf("mls: join: %w", err)
	}
	self, ok := tree.IndexOf(&kp.LeafNode)
	if !ok {
		return nil, fmt.Errorf("%w: join: own leaf is not in the tree", treekem.ErrTree)
	}
	priv := treekem.NewPrivateTree(self, kpPriv.EncryptionKey)
	if gs.PathSecret != nil {
		if priv, err = priv.WithJoinPathSecret(tree, gi.Signer, gs.PathSecret); err != nil {
			return nil, fmt.Errorf("mls: join: %w", err)
		}
	}
	ep, err := schedule.FromJoiner(s, gs.JoinerSecret, psk, gi.GroupContext.Marshal())
	if err != nil {
		return nil, fmt.Errorf("mls: join: %w", err)
	}
	if !ep.VerifyConfirmationTag(gi.GroupContext.ConfirmedTranscriptHash, gi.ConfirmationTag) {
		return nil, fmt.Errorf("%w: join: confirmation tag", message.ErrAuth)
	}
	ep.DropJoinerSecrets()
	st, err := newEpochState(s, cfg, gi.GroupContext, tree, priv, ep, gi.ConfirmationTag, g.st)
	if err != nil {
		return nil, err
	}
	g.st = st
	return g, nil
}

// joinTree reads, verifies and checks a joiner's ratchet tree against a
// GroupInfo (handshake.VerifyGroupInfoTree) with the group's validator.
func (g *Group) joinTree(gi *message.GroupInfo, external []byte) (*treekem.RatchetTree, error) {
	return handshake.VerifyGroupInfoTree(g.s, gi, external, g.cfg.Validator)
}
