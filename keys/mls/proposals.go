package mls

import (
	"fmt"
	"slices"

	"hearth/keys/mls/message"
	"hearth/keys/mls/suite"
	"hearth/keys/mls/treekem"
	"hearth/keys/mls/treemath"
)

// resolved is one proposal of a commit with the member who proposed it.
type resolved struct {
	p      *message.Proposal
	sender message.Sender
	ref    []byte // nil when included by value
}

// provisional is the state after a commit's proposals are applied and
// before its path and key schedule (RFC 9420 §12.4.2).
type provisional struct {
	tree         *treekem.RatchetTree
	ctx          message.GroupContext // epoch+1, new extensions, old transcript hash
	added        []treemath.LeafIndex
	addKPs       []*message.KeyPackage
	removed      []Member
	updated      []treemath.LeafIndex
	psks         []message.PreSharedKeyID
	kemOutput    []byte // external init
	pathRequired bool
	gce          bool // a GroupContextExtensions proposal was applied
	selfRemoved  bool
	ownUpdate    suite.HPKEPrivateKey
}

// proposalCounts checks the list-wide rules of §12.2.
func checkProposalList(props []resolved, committer message.Sender) error {
	count := map[message.ProposalType]int{}
	for _, r := range props {
		count[r.p.Type]++
		if r.p.Type == message.ProposalReInit {
			return fmt.Errorf("%w: ReInit proposals", ErrUnsupported)
		}
		if r.p.Type < message.ProposalAdd || r.p.Type > message.ProposalGroupContextExtensions {
			return fmt.Errorf("%w: proposal type %d", ErrProposal, r.p.Type)
		}
	}
	if count[message.ProposalGroupContextExtensions] > 1 {
		return fmt.Errorf("%w: more than one GroupContextExtensions", ErrProposal)
	}
	if committer.Type != message.SenderNewMemberCommit {
		if count[message.ProposalExternalInit] > 0 {
			return fmt.Errorf("%w: ExternalInit in a member's commit", ErrProposal)
		}
		return nil
	}
	if count[message.ProposalExternalInit] != 1 || count[message.ProposalRemove] > 1 {
		return fmt.Errorf("%w: external commit needs one ExternalInit and at most one Remove", ErrProposal)
	}
	for _, r := range props {
		if r.ref != nil {
			return fmt.Errorf("%w: external commit with proposals by reference", ErrProposal)
		}
		switch r.p.Type {
		case message.ProposalExternalInit, message.ProposalRemove, message.ProposalPSK:
		default:
			return fmt.Errorf("%w: proposal type %d in an external commit", ErrProposal, r.p.Type)
		}
	}
	return nil
}

// applyProposals validates props (§12.2) and applies them in the order
// of §12.3 to a copy of the current tree. committer is the commit's
// sender; for a member, committer.Index is its leaf.
func (v *epochView) applyProposals(props []resolved, committer message.Sender) (*provisional, error) {
	if err := checkProposalList(props, committer); err != nil {
		return nil, err
	}
	pv := &provisional{tree: v.tree.Clone(), ctx: *v.ctx, pathRequired: len(props) == 0}
	pv.ctx.Epoch++
	pv.ctx.TreeHash = nil // set once the path (if any) is merged
	for _, r := range props {
		switch r.p.Type {
		case message.ProposalUpdate, message.ProposalRemove, message.ProposalExternalInit, message.ProposalGroupContextExtensions:
			pv.pathRequired = true
		}
	}
	steps := []func([]resolved, message.Sender) error{pv.applyGCE(), pv.applyUpdates(v), pv.applyRemoves(v), pv.applyAdds(v), pv.collectPSKs(v)}
	for _, step := range steps {
		if err := step(props, committer); err != nil {
			return nil, err
		}
	}
	return pv, nil
}

func (pv *provisional) required() (*message.RequiredCapabilities, error) {
	rc, _, err := pv.ctx.Extensions.RequiredCapabilities()
	if err != nil {
		return nil, fmt.Errorf("%w: required_capabilities: %w", ErrProposal, err)
	}
	return rc, nil
}

func (pv *provisional) applyGCE() func([]resolved, message.Sender) error {
	return func(props []resolved, _ message.Sender) error {
		for _, r := range props {
			if r.p.Type != message.ProposalGroupContextExtensions {
				continue
			}
			pv.ctx.Extensions = slices.Clone(r.p.GroupContextExtensions)
			pv.gce = true
			rc, err := pv.required()
			if err != nil {
				return err
			}
			for _, l := range pv.tree.Members() {
				if err := supportsExtensions(pv.tree.Leaf(l), pv.ctx.Extensions, rc); err != nil {
					return fmt.Errorf("%w: member %d: %w", ErrProposal, l, err)
				}
			}
		}
		return nil
	}
}

// supportsExtensions checks that leaf supports every non-default
// extension type in exts and the required capabilities.
func supportsExtensions(leaf *message.LeafNode, exts message.Extensions, rc *message.RequiredCapabilities) error {
	for _, e := range exts {
		if e.Type > message.ExtExternalSenders && !slices.Contains(leaf.Capabilities.Extensions, e.Type) {
			return fmt.Errorf("leaf does not support extension %d", e.Type)
		}
	}
	return treekem.CheckRequired(&leaf.Capabilities, rc)
}

func (pv *provisional) applyUpdates(v *epochView) func([]resolved, message.Sender) error {
	return func(props []resolved, committer message.Sender) error {
		rc, err := pv.required()
		if err != nil {
			return err
		}
		seen := map[treemath.LeafIndex]bool{}
		for _, r := range props {
			if r.p.Type != message.ProposalUpdate {
				continue
			}
			l := treemath.LeafIndex(r.sender.Index)
			switch {
			case r.sender.Type != message.SenderMember:
				return fmt.Errorf("%w: Update from a non-member", ErrProposal)
			case committer.Type == message.SenderMember && r.sender.Index == committer.Index:
				return fmt.Errorf("%w: committer includes its own Update", ErrProposal)
			case seen[l]:
				return fmt.Errorf("%w: two Updates for leaf %d", ErrProposal, l)
			}
			seen[l] = true
			if err := pv.tree.ValidateLeafNode(r.p.Update, treekem.LeafPolicy{Source: message.SourceUpdate, GroupID: pv.ctx.GroupID,
				Leaf: l, Required: rc}); err != nil {
				return fmt.Errorf("%w: Update of leaf %d: %w", ErrProposal, l, err)
			}
			if err := sameIdentity(pv.tree.Leaf(l), r.p.Update); err != nil {
				return err
			}
			if err := v.validateMember(r.p.Update); err != nil {
				return err
			}
			if _, err := pv.tree.ApplyProposal(r.p, l); err != nil {
				return fmt.Errorf("%w: %w", ErrProposal, err)
			}
			pv.updated = append(pv.updated, l)
			if v.priv != nil && l == v.priv.Self() {
				k, ok := v.updateKeys[string(r.ref)]
				if !ok {
					return fmt.Errorf("%w: commit applies an Update of this member it did not send", ErrProposal)
				}
				pv.ownUpdate = k
			}
		}
		return nil
	}
}

func (pv *provisional) applyRemoves(v *epochView) func([]resolved, message.Sender) error {
	return func(props []resolved, committer message.Sender) error {
		for _, r := range props {
			if r.p.Type != message.ProposalRemove {
				continue
			}
			l := r.p.Remove
			switch {
			case pv.tree.Leaf(l) == nil:
				return fmt.Errorf("%w: Remove of blank or absent leaf %d", ErrProposal, l)
			case committer.Type == message.SenderMember && uint32(l) == committer.Index:
				return fmt.Errorf("%w: committer removes itself", ErrProposal)
			case slices.Contains(pv.updated, l):
				return fmt.Errorf("%w: leaf %d both updated and removed", ErrProposal, l)
			}
			pv.removed = append(pv.removed, memberAt(pv.tree, l))
			if _, err := pv.tree.ApplyProposal(r.p, 0); err != nil {
				return fmt.Errorf("%w: %w", ErrProposal, err)
			}
			if v.priv != nil && l == v.priv.Self() {
				pv.selfRemoved = true
			}
		}
		return nil
	}
}

func (pv *provisional) applyAdds(v *epochView) func([]resolved, message.Sender) error {
	return func(props []resolved, _ message.Sender) error {
		rc, err := pv.required()
		if err != nil {
			return err
		}
		for _, r := range props {
			switch r.p.Type {
			case message.ProposalAdd:
			case message.ProposalExternalInit:
				pv.kemOutput = r.p.ExternalInitKEMOutput
				continue
			default:
				continue
			}
			kp := r.p.Add
			if err := v.checkKeyPackage(pv.tree, kp, rc); err != nil {
				return err
			}
			if err := supportsExtensions(&kp.LeafNode, pv.ctx.Extensions, rc); err != nil {
				return fmt.Errorf("%w: added member: %w", ErrProposal, err)
			}
			l, err := pv.tree.ApplyProposal(r.p, 0)
			if err != nil {
				return fmt.Errorf("%w: %w", ErrProposal, err)
			}
			pv.added = append(pv.added, l)
			pv.addKPs = append(pv.addKPs, kp)
		}
		return nil
	}
}

// checkKeyPackage validates a KeyPackage to be added to tree. Besides
// RFC 9420's rules, a credential identity (a Hearth device) may hold only
// one leaf: adding a device that is already a member is refused (a
// device that lost its state rejoins with a Remove of its old leaf, e.g.
// an external commit with Resync).
func (v *epochView) checkKeyPackage(tree *treekem.RatchetTree, kp *message.KeyPackage, rc *message.RequiredCapabilities) error {
	if l, dup := leafWithIdentity(tree, kp.LeafNode.Credential.Identity); dup {
		return fmt.Errorf("%w: Add: %q is already member %d", ErrProposal, kp.LeafNode.Credential.Identity, l)
	}
	if err := kp.Verify(v.s); err != nil {
		return fmt.Errorf("%w: Add: %w", ErrProposal, err)
	}
	pol := treekem.LeafPolicy{Source: message.SourceKeyPackage, GroupID: v.ctx.GroupID, Required: rc, Now: v.now}
	if err := tree.ValidateLeafNode(&kp.LeafNode, pol); err != nil {
		return fmt.Errorf("%w: Add: %w", ErrProposal, err)
	}
	for _, l := range tree.Members() {
		if string(tree.Leaf(l).EncryptionKey) == string(kp.InitKey) {
			return fmt.Errorf("%w: Add: init key reuses member %d's key", ErrProposal, l)
		}
	}
	return v.validateMember(&kp.LeafNode)
}

func (pv *provisional) collectPSKs(v *epochView) func([]resolved, message.Sender) error {
	return func(props []resolved, _ message.Sender) error {
		seen := map[string]bool{}
		for _, r := range props {
			if r.p.Type != message.ProposalPSK {
				continue
			}
			id := r.p.PSK
			if err := v.checkPSKID(id); err != nil {
				return err
			}
			noNonce := *id
			noNonce.Nonce = nil
			key := string(noNonce.Marshal())
			if seen[key] {
				return fmt.Errorf("%w: duplicate PSK", ErrProposal)
			}
			seen[key] = true
			pv.psks = append(pv.psks, *id)
		}
		return nil
	}
}

func (v *epochView) checkPSKID(id *message.PreSharedKeyID) error {
	if len(id.Nonce) != v.s.Nh() {
		return fmt.Errorf("%w: PSK nonce is %d bytes", ErrProposal, len(id.Nonce))
	}
	if id.Type == message.PSKResumption && id.Usage != message.ResumptionApplication {
		return fmt.Errorf("%w: resumption PSK usage %d", ErrProposal, id.Usage)
	}
	return nil
}

func leafWithIdentity(t *treekem.RatchetTree, id []byte) (treemath.LeafIndex, bool) {
	if len(id) == 0 {
		return 0, false
	}
	for _, l := range t.Members() {
		if string(t.Leaf(l).Credential.Identity) == string(id) {
			return l, true
		}
	}
	return 0, false
}

// sameIdentity refuses a leaf replacement (Update, commit path) that
// changes the member's credential identity: a Hearth device keeps its
// address for as long as it is a member.
func sameIdentity(old, leaf *message.LeafNode) error {
	if old != nil && string(old.Credential.Identity) != string(leaf.Credential.Identity) {
		return fmt.Errorf("%w: leaf replacement changes identity %q to %q", ErrProposal,
			old.Credential.Identity, leaf.Credential.Identity)
	}
	return nil
}
