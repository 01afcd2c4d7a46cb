package mls

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"hearth/keys/mls/handshake"
	"hearth/keys/mls/message"
	"hearth/keys/mls/schedule"
	"hearth/keys/mls/suite"
	"hearth/keys/mls/treemath"
)

// Errors of the group state machine. Every error a Group method returns
// wraps one of these or one of the errors of the subpackages that api.go
// re-exports (ErrMalformed, ErrAuth, ErrTree, ErrEpoch, ErrGroup,
// ErrSender, ErrProposal, ErrCredential, ErrUnsupported).
var (
	// ErrPending: a commit is pending, or none is.
	ErrPending = errors.New("mls: pending commit state")
	// ErrRemoved: this member was removed from the group.
	ErrRemoved = errors.New("mls: removed from group")
	// ErrOwnCommit: the member's own commit came back.
	ErrOwnCommit = errors.New("mls: own commit echoed")
	// ErrPSK: a pre-shared key the member does not have.
	ErrPSK = errors.New("mls: unknown pre-shared key")
)

// Config holds a group's dependencies and policies. Only Validator is
// required; zero values get defaults.
type Config struct {
	Validator handshake.CredentialValidator
	Rand      io.Reader        // default crypto/rand
	Now       func() time.Time // for KeyPackage lifetimes; default time.Now
	// PaddingBlock pads PrivateMessage content to a multiple of this many
	// bytes (default 32; 1 disables padding).
	PaddingBlock int
	// KeepEpochs is how many previous epochs keep their application keys
	// so messages sent just before a commit still decrypt (default 2).
	KeepEpochs int
	// KeepResumption is how many recent epochs keep their resumption PSK
	// (default 8).
	KeepResumption int
	// Limits bound the secret tree's out-of-order window.
	Limits schedule.Limits
}

func (c Config) withDefaults() (Config, error) {
	if c.Validator == nil {
		return c, fmt.Errorf("%w: Config.Validator is required", handshake.ErrUnsupported)
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.PaddingBlock == 0 {
		c.PaddingBlock = 32
	}
	if c.KeepEpochs == 0 {
		c.KeepEpochs = 2
	}
	if c.KeepResumption == 0 {
		c.KeepResumption = 8
	}
	if c.Limits.MaxForward == 0 {
		c.Limits = schedule.DefaultLimits
	}
	return c, nil
}

// Group is one member's state of an MLS group. It is not safe for
// concurrent use. Every method that fails leaves the state unchanged.
type Group struct {
	cfg     Config
	s       *suite.Suite
	signer  *suite.Signer
	st      *epochState
	past    []*pastEpoch // newest first
	removed bool
	pending *pendingCommit

	sizeHint [splitStateVersion + 1]int // last state length by version, to pre-size the next
}

// Epoch returns the current epoch number.
func (g *Group) Epoch() uint64 { return g.st.ctx.Epoch }

// GroupID returns the group id.
func (g *Group) GroupID() []byte { return slices.Clone(g.st.ctx.GroupID) }

// Suite returns the group's cipher suite.
func (g *Group) Suite() *suite.Suite { return g.s }

// OwnLeaf returns this member's leaf index.
func (g *Group) OwnLeaf() treemath.LeafIndex { return g.st.priv.Self() }

// Active is false once this member has been removed.
func (g *Group) Active() bool { return !g.removed }

// Members returns every non-blank leaf.
func (g *Group) Members() []handshake.Member {
	var out []handshake.Member
	for _, l := range g.st.tree.Members() {
		out = append(out, handshake.MemberAt(g.st.tree, l))
	}
	return out
}

// MemberIdentities returns the credential identities of the members (the
// non-blank leaves with one), in leaf order: Members' identities without
// copying the members' keys, from a list kept until the tree changes.
func (g *Group) MemberIdentities() []string { return slices.Clone(g.st.tree.Identities()) }

// LeafOf returns the leaf of the member with credential identity id.
func (g *Group) LeafOf(id []byte) (treemath.LeafIndex, bool) {
	return handshake.LeafWithIdentity(g.st.tree, id)
}

// EpochAuthenticator returns the epoch authenticator (RFC 9420 §8.7),
// which members may compare out of band to detect a split group.
func (g *Group) EpochAuthenticator() []byte { return slices.Clone(g.st.secrets.EpochAuthenticator) }

// Extensions returns the GroupContext extensions.
func (g *Group) Extensions() message.Extensions { return slices.Clone(g.st.ctx.Extensions) }

// GroupContext returns a copy of the current GroupContext.
func (g *Group) GroupContext() message.GroupContext { return g.st.ctx }

// Export derives an exporter secret (RFC 9420 §8.5).
func (g *Group) Export(label string, context []byte, length int) ([]byte, error) {
	out, err := g.st.secrets.Export(label, context, length)
	if err != nil {
		return nil, fmt.Errorf("mls: export: %w", err)
	}
	return out, nil
}

// SetExternalPSK stores an external pre-shared key under id, for PSK
// proposals that name it.
func (g *Group) SetExternalPSK(id, secret []byte) {
	g.st.externalPSKs[string(id)] = slices.Clone(secret)
}

func (g *Group) usable() error {
	if g.removed {
		return ErrRemoved
	}
	return nil
}

// view returns the member's view of its current epoch.
func (g *Group) view() *handshake.View {
	return &handshake.View{Suite: g.s, GroupContext: &g.st.ctx, Tree: g.st.tree, Proposals: g.st.proposals,
		Validator: g.cfg.Validator, Now: g.cfg.Now(), Private: g.st.priv, UpdateKeys: g.st.updateKeys}
}

// validateMember runs the credential validator on a leaf.
func (g *Group) validateMember(leaf *message.LeafNode) error {
	return handshake.ValidateMember(g.cfg.Validator, leaf)
}

// Clear zeroes every secret the group holds (epoch secrets, message keys
// of the current and retained epochs, a pending commit's), for when the
// conversation is deleted or the device leaves. The group is unusable
// afterwards.
func (g *Group) Clear() {
	g.DiscardPendingCommit()
	for _, p := range g.past {
		p.clear()
	}
	g.past = nil
	g.st.secrets.Clear()
	clear(g.st.keys.SenderDataSecret)
	g.st.keys.Tree.Clear()
	g.st.priv.Clear()
	g.removed = true
}
