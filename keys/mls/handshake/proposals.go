package handshake

import (
	"fmt"
	"slices"

	"hearth/keys/mls/message"
	"hearth/keys/mls/suite"
	"hearth/keys/mls/treekem"
	"hearth/keys/mls/treemath"
)

// Resolved is one proposal of a commit with the member who proposed it.
type Resolved struct {
	Proposal *message.Proposal
	Sender   message.Sender
	Ref      []byte // nil when included by value
}

// Provisional is the state after a commit's proposals are applied and
// before its path and key schedule (RFC 9420 §12.4.2).
type Provisional struct {
	Tree              *treekem.RatchetTree
	GroupContext      message.GroupContext // epoch+1, new extensions, old transcript hash
	Added             []treemath.LeafIndex
	AddKeyPackages    []*message.KeyPackage
	Removed           []Member
	Updated           []treemath.LeafIndex
	PSKs              []message.PreSharedKeyID
	KEMOutput         []byte // external init
	PathRequired      bool
	ExtensionsChanged bool // a GroupContextExtensions proposal was applied
	SelfRemoved       bool
	OwnUpdateKey      suite.HPKEPrivateKey
}

// checkProposalList checks the list-wide rules of §12.2.
func checkProposalList(props []Resolved, committer message.Sender) error {
	count := map[message.ProposalType]int{}
	for _, r := range props {
		count[r.Proposal.Type]++
		if r.Proposal.Type == message.ProposalReInit {
			return fmt.Errorf("%w: ReInit proposals", ErrUnsupported)
		}
		if r.Proposal.Type < message.ProposalAdd || r.Proposal.Type > message.ProposalGroupContextExtensions {
			return fmt.Errorf("%w: proposal type %d", ErrProposal, r.Proposal.Type)
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
		if r.Ref != nil {
			return fmt.Errorf("%w: external commit with proposals by reference", ErrProposal)
		}
		switch r.Proposal.Type {
		case message.ProposalExternalInit, message.ProposalRemove, message.ProposalPSK:
		default:
			return fmt.Errorf("%w: proposal type %d in an external commit", ErrProposal, r.Proposal.Type)
		}
	}
	return nil
}

// ApplyProposals validates props (§12.2) and applies them in the order
// of §12.3 to a copy of the current tree. committer is the commit's
// sender; for a member, committer.Index is its leaf.
func (v *View) ApplyProposals(props []Resolved, committer message.Sender) (*Provisional, error) {
	if err := checkProposalList(props, committer); err != nil {
		return nil, err
	}
	pv := &Provisional{Tree: v.Tree.Clone(), GroupContext: *v.GroupContext, PathRequired: len(props) == 0}
	pv.GroupContext.Epoch++
	pv.GroupContext.TreeHash = nil // set once the path (if any) is merged
	for _, r := range props {
		switch r.Proposal.Type {
		case message.ProposalUpdate, message.ProposalRemove, message.ProposalExternalInit, message.ProposalGroupContextExtensions:
			pv.PathRequired = true
		}
	}
	steps := []func([]Resolved, message.Sender) error{pv.applyGCE(), pv.applyUpdates(v), pv.applyRemoves(v),
		pv.applyAdds(v), pv.collectPSKs(v)}
	for _, step := range steps {
		if err := step(props, committer); err != nil {
			return nil, err
		}
	}
	return pv, nil
}

func (pv *Provisional) required() (*message.RequiredCapabilities, error) {
	rc, _, err := pv.GroupContext.Extensions.RequiredCapabilities()
	if err != nil {
		return nil, fmt.Errorf("%w: required_capabilities: %w", ErrProposal, err)
	}
	return rc, nil
}

func (pv *Provisional) applyGCE() func([]Resolved, message.Sender) error {
	return func(props []Resolved, _ message.Sender) error {
		for _, r := range props {
			if r.Proposal.Type != message.ProposalGroupContextExtensions {
				continue
			}
			pv.GroupContext.Extensions = slices.Clone(r.Proposal.GroupContextExtensions)
			pv.ExtensionsChanged = true
			rc, err := pv.required()
			if err != nil {
				return err
			}
			for _, l := range pv.Tree.Members() {
				if err := SupportsExtensions(pv.Tree.Leaf(l), pv.GroupContext.Extensions, rc); err != nil {
					return fmt.Errorf("%w: member %d: %w", ErrProposal, l, err)
				}
			}
		}
		return nil
	}
}

// SupportsExtensions checks that leaf supports every non-default
// extension type in exts and the required capabilities.
func SupportsExtensions(leaf *message.LeafNode, exts message.Extensions, rc *message.RequiredCapabilities) error {
	for _, e := range exts {
		if e.Type > message.ExtExternalSenders && !slices.Contains(leaf.Capabilities.Extensions, e.Type) {
			return fmt.Errorf("leaf does not support extension %d", e.Type)
		}
	}
	return treekem.CheckRequired(&leaf.Capabilities, rc)
}

func (pv *Provisional) applyUpdates(v *View) func([]Resolved, message.Sender) error {
	return func(props []Resolved, committer message.Sender) error {
		rc, err := pv.required()
		if err != nil {
			return err
		}
		seen := map[treemath.LeafIndex]bool{}
		for _, r := range props {
			if r.Proposal.Type != message.ProposalUpdate {
				continue
			}
			l := treemath.LeafIndex(r.Sender.Index)
			switch {
			case r.Sender.Type != message.SenderMember:
				return fmt.Errorf("%w: Update from a non-member", ErrProposal)
			case committer.Type == message.SenderMember && r.Sender.Index == committer.Index:
				return fmt.Errorf("%w: committer includes its own Update", ErrProposal)
			case seen[l]:
				return fmt.Errorf("%w: two Updates for leaf %d", ErrProposal, l)
			}
			seen[l] = true
			if err := pv.Tree.ValidateLeafNode(r.Proposal.Update, treekem.LeafPolicy{Source: message.SourceUpdate, GroupID: pv.GroupContext.GroupID,
				Leaf: l, Required: rc}); err != nil {
				return fmt.Errorf("%w: Update of leaf %d: %w", ErrProposal, l, err)
			}
			if err := sameIdentity(pv.Tree.Leaf(l), r.Proposal.Update); err != nil {
				return err
			}
			if err := v.validateMember(r.Proposal.Update); err != nil {
				return err
			}
			if _, err := pv.Tree.ApplyProposal(r.Proposal, l); err != nil {
				return fmt.Errorf("%w: %w", ErrProposal, err)
			}
			pv.Updated = append(pv.Updated, l)
			if v.Private != nil && l == v.Private.Self() {
				k, ok := v.UpdateKeys[string(r.Ref)]
				if !ok {
					return fmt.Errorf("%w: commit applies an Update of this member it did not send", ErrProposal)
				}
				pv.OwnUpdateKey = k
			}
		}
		return nil
	}
}

func (pv *Provisional) applyRemoves(v *View) func([]Resolved, message.Sender) error {
	return func(props []Resolved, committer message.Sender) error {
		for _, r := range props {
			if r.Proposal.Type != message.ProposalRemove {
				continue
			}
			l := r.Proposal.Remove
			switch {
			case pv.Tree.Leaf(l) == nil:
				return fmt.Errorf("%w: Remove of blank or absent leaf %d", ErrProposal, l)
			case committer.Type == message.SenderMember && uint32(l) == committer.Index:
				return fmt.Errorf("%w: committer removes itself", ErrProposal)
			case slices.Contains(pv.Updated, l):
				return fmt.Errorf("%w: leaf %d both updated and removed", ErrProposal, l)
			}
			pv.Removed = append(pv.Removed, MemberAt(pv.Tree, l))
			if _, err := pv.Tree.ApplyProposal(r.Proposal, 0); err != nil {
				return fmt.Errorf("%w: %w", ErrProposal, err)
			}
			if v.Private != nil && l == v.Private.Self() {
				pv.SelfRemoved = true
			}
		}
		return nil
	}
}

func (pv *Provisional) applyAdds(v *View) func([]Resolved, message.Sender) error {
	return func(props []Resolved, _ message.Sender) error {
		rc, err := pv.required()
		if err != nil {
			return err
		}
		for _, r := range props {
			switch r.Proposal.Type {
			case message.ProposalAdd:
			case message.ProposalExternalInit:
				pv.KEMOutput = r.Proposal.ExternalInitKEMOutput
				continue
			default:
				continue
			}
			kp := r.Proposal.Add
			if err := v.checkKeyPackage(pv.Tree, kp, rc); err != nil {
				return err
			}
			if err := SupportsExtensions(&kp.LeafNode, pv.GroupContext.Extensions, rc); err != nil {
				return fmt.Errorf("%w: added member: %w", ErrProposal, err)
			}
			l, err := pv.Tree.ApplyProposal(r.Proposal, 0)
			if err != nil {
				return fmt.Errorf("%w: %w", ErrProposal, err)
			}
			pv.Added = append(pv.Added, l)
			pv.AddKeyPackages = append(pv.AddKeyPackages, kp)
		}
		return nil
	}
}

// checkKeyPackage validates a KeyPackage to be added to tree. Besides
// RFC 9420's rules, a credential identity (a Hearth device) may hold only
// one leaf: adding a device that is already a member is refused (a
// device that lost its state rejoins with a Remove of its old leaf, e.g.
// an external commit with Resync).
func (v *View) checkKeyPackage(tree *treekem.RatchetTree, kp *message.KeyPackage, rc *message.RequiredCapabilities) error {
	if l, dup := LeafWithIdentity(tree, kp.LeafNode.Credential.Identity); dup {
		return fmt.Errorf("%w: Add: %q is already member %d", ErrProposal, kp.LeafNode.Credential.Identity, l)
	}
	if err := kp.Verify(v.Suite); err != nil {
		return fmt.Errorf("%w: Add: %w", ErrProposal, err)
	}
	pol := treekem.LeafPolicy{Source: message.SourceKeyPackage, GroupID: v.GroupContext.GroupID, Required: rc, Now: v.Now}
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

func (pv *Provisional) collectPSKs(v *View) func([]Resolved, message.Sender) error {
	return func(props []Resolved, _ message.Sender) error {
		seen := map[string]bool{}
		for _, r := range props {
			if r.Proposal.Type != message.ProposalPSK {
				continue
			}
			id := r.Proposal.PSK
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
			pv.PSKs = append(pv.PSKs, *id)
		}
		return nil
	}
}

func (v *View) checkPSKID(id *message.PreSharedKeyID) error {
	if len(id.Nonce) != v.Suite.Nh() {
		return fmt.Errorf("%w: PSK nonce is %d bytes", ErrProposal, len(id.Nonce))
	}
	if id.Type == message.PSKResumption && id.Usage != message.ResumptionApplication {
		return fmt.Errorf("%w: resumption PSK usage %d", ErrProposal, id.Usage)
	}
	return nil
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
