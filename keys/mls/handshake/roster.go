package handshake

import (
	"fmt"
	"slices"

	"hearth/keys/mls/message"
	"hearth/keys/mls/treekem"
	"hearth/keys/mls/treemath"
)

// CredentialValidator decides whether a member's credential identity and
// signature key are acceptable; *identity.Validator implements it (the
// identity is `user@domain/DEVICE` and the device must be on the user's
// validly signed device list).
type CredentialValidator interface {
	ValidateMember(identity, signatureKey []byte) error
}

// AcceptAll is a CredentialValidator that accepts every member, for tests
// and for interop vectors whose credentials are not Hearth devices.
type AcceptAll struct{}

// ValidateMember accepts everything.
func (AcceptAll) ValidateMember(identity, signatureKey []byte) error { return nil }

var _ CredentialValidator = AcceptAll{}

// Member is one leaf of the group.
type Member struct {
	Leaf         treemath.LeafIndex
	Identity     []byte
	SignatureKey message.SignaturePublicKey
}

// MemberAt returns the roster entry of leaf l of t (only Leaf is set for
// a blank leaf).
func MemberAt(t *treekem.RatchetTree, l treemath.LeafIndex) Member {
	leaf := t.Leaf(l)
	if leaf == nil {
		return Member{Leaf: l}
	}
	return Member{Leaf: l, Identity: slices.Clone(leaf.Credential.Identity), SignatureKey: slices.Clone(leaf.SignatureKey)}
}

// ValidateMember runs the credential validator val on a leaf.
func ValidateMember(val CredentialValidator, leaf *message.LeafNode) error {
	if err := val.ValidateMember(leaf.Credential.Identity, leaf.SignatureKey); err != nil {
		return fmt.Errorf("%w: %q: %w", ErrCredential, leaf.Credential.Identity, err)
	}
	return nil
}

// LeafWithIdentity returns the leaf of t whose credential identity is id.
func LeafWithIdentity(t *treekem.RatchetTree, id []byte) (treemath.LeafIndex, bool) {
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
