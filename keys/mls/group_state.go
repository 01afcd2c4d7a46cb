package mls

import (
	"fmt"
	"maps"
	"slices"

	"hearth/keys/mls/handshake"
	"hearth/keys/mls/message"
	"hearth/keys/mls/schedule"
	"hearth/keys/mls/suite"
	"hearth/keys/mls/treekem"
	"hearth/keys/mls/treemath"
)

// epochState is everything a member holds for its current epoch. A commit
// builds a new epochState; the old one is kept only as a pastEpoch.
type epochState struct {
	ctx     message.GroupContext
	tree    *treekem.RatchetTree
	priv    *treekem.PrivateTree
	secrets *schedule.Epoch // joiner, welcome and epoch secrets dropped
	keys    message.PrivateKeys
	interim []byte // interim transcript hash
	// proposals received (or sent) in this epoch, for commits by reference.
	proposals []handshake.CachedProposal
	// updateKeys are the leaf private keys of this member's own Update
	// proposals, by proposal ref.
	updateKeys   map[string]suite.HPKEPrivateKey
	resumption   []resumptionPSK // newest last
	externalPSKs map[string][]byte
}

type resumptionPSK struct {
	epoch  uint64
	secret []byte
}

// pastEpoch keeps what is needed to read application messages of an
// epoch just left: its GroupContext (signed over), its members' signature
// keys and identities (not the whole tree, which is much larger), and its
// message keys.
type pastEpoch struct {
	ctx     message.GroupContext
	members []handshake.Member // non-blank leaves, ascending
	keys    message.PrivateKeys
	// membersEnc and membersSum memoize the member list's encoding and its
	// SHA-256 for split states (group_split.go).
	membersEnc []byte
	membersSum treekem.TreeRef
}

func (e *pastEpoch) member(l treemath.LeafIndex) (handshake.Member, bool) {
	for _, m := range e.members {
		if m.Leaf == l {
			return m, true
		}
	}
	return handshake.Member{}, false
}

func (e *pastEpoch) clear() {
	clear(e.keys.SenderDataSecret)
	e.keys.Tree.Clear()
}

// newEpochState finishes an epoch: it starts the secret tree and records
// the resumption PSK. psks and updateKeys carry over from prev (nil for a
// joiner).
func newEpochState(s *suite.Suite, cfg Config, ctx message.GroupContext, tree *treekem.RatchetTree, priv *treekem.PrivateTree,
	ep *schedule.Epoch, confirmationTag []byte, prev *epochState) (*epochState, error) {
	st, err := schedule.NewSecretTree(s, ep.EncryptionSecret, tree.NumLeaves(), cfg.Limits)
	if err != nil {
		return nil, fmt.Errorf("mls: secret tree: %w", err)
	}
	e := &epochState{ctx: ctx, tree: tree, priv: priv, secrets: ep,
		keys:       message.PrivateKeys{SenderDataSecret: slices.Clone(ep.SenderDataSecret), Tree: st},
		interim:    schedule.InterimTranscriptHash(s, ctx.ConfirmedTranscriptHash, confirmationTag),
		updateKeys: map[string]suite.HPKEPrivateKey{}, externalPSKs: map[string][]byte{}}
	if prev != nil {
		e.resumption = slices.Clone(prev.resumption)
		e.externalPSKs = maps.Clone(prev.externalPSKs)
	}
	e.resumption = append(e.resumption, resumptionPSK{epoch: ctx.Epoch, secret: slices.Clone(ep.ResumptionPSK)})
	if n := len(e.resumption) - cfg.KeepResumption; n > 0 {
		e.resumption = e.resumption[n:]
	}
	return e, nil
}

func (e *epochState) resumptionPSK(epoch uint64) ([]byte, bool) {
	for _, r := range e.resumption {
		if r.epoch == epoch {
			return r.secret, true
		}
	}
	return nil, false
}

// retire moves the current epoch into g.past and installs next.
func (g *Group) retire(next *epochState) {
	old := g.st
	past := &pastEpoch{ctx: old.ctx, keys: old.keys}
	for _, l := range old.tree.Members() {
		past.members = append(past.members, handshake.MemberAt(old.tree, l))
	}
	g.past = append([]*pastEpoch{past}, g.past...)
	for len(g.past) > g.cfg.KeepEpochs {
		g.past[len(g.past)-1].clear()
		g.past = g.past[:len(g.past)-1]
	}
	g.st = next
}

func (g *Group) pastEpoch(epoch uint64) (*pastEpoch, bool) {
	for _, p := range g.past {
		if p.ctx.Epoch == epoch {
			return p, true
		}
	}
	return nil, false
}
