package message

import (
	"fmt"

	"hearth/keys/mls/suite"
	"hearth/keys/mls/treemath"
)

// Signature labels of RFC 9420 (SignWithLabel prefixes "MLS 1.0 ").
const (
	labelLeafNode   = "LeafNodeTBS"
	labelKeyPackage = "KeyPackageTBS"
	labelGroupInfo  = "GroupInfoTBS"
)

// Sign sets l.Signature over its LeafNodeTBS. groupID and leaf are used
// for the update and commit sources only.
func (l *LeafNode) Sign(s *suite.Suite, signer *suite.Signer, groupID []byte, leaf treemath.LeafIndex) error {
	sig, err := s.SignWithLabel(signer, labelLeafNode, l.TBS(groupID, leaf))
	if err != nil {
		return fmt.Errorf("mls: sign leaf node: %w", err)
	}
	l.Signature = sig
	return nil
}

// Verify checks l's signature with its own signature key.
func (l *LeafNode) Verify(s *suite.Suite, groupID []byte, leaf treemath.LeafIndex) error {
	if err := s.VerifyWithLabel(l.SignatureKey, labelLeafNode, l.TBS(groupID, leaf), l.Signature); err != nil {
		return fmt.Errorf("mls: leaf node signature: %w", err)
	}
	return nil
}

// Sign sets k.Signature over its KeyPackageTBS with the leaf's signature key.
func (k *KeyPackage) Sign(s *suite.Suite, signer *suite.Signer) error {
	sig, err := s.SignWithLabel(signer, labelKeyPackage, k.TBS())
	if err != nil {
		return fmt.Errorf("mls: sign key package: %w", err)
	}
	k.Signature = sig
	return nil
}

// Verify checks the KeyPackage's own and its leaf node's signatures, its
// version and cipher suite, and that its leaf node comes from a key
// package and its init key differs from the leaf's encryption key
// (RFC 9420 §10.1). Credential and lifetime checks are the caller's.
func (k *KeyPackage) Verify(s *suite.Suite) error {
	switch {
	case k.Version != MLS10:
		return fmt.Errorf("%w: key package version %d", ErrMalformed, k.Version)
	case k.CipherSuite != s.ID():
		return fmt.Errorf("%w: key package suite %v, want %v", ErrMalformed, k.CipherSuite, s.ID())
	case k.LeafNode.Source != SourceKeyPackage:
		return fmt.Errorf("%w: key package leaf source %d", ErrMalformed, k.LeafNode.Source)
	case string(k.InitKey) == string(k.LeafNode.EncryptionKey):
		return fmt.Errorf("%w: key package init key equals its encryption key", ErrMalformed)
	}
	if err := s.ValidateHPKEPublicKey(k.InitKey); err != nil {
		return fmt.Errorf("mls: key package init key: %w", err)
	}
	if err := k.LeafNode.Verify(s, nil, 0); err != nil {
		return err
	}
	if err := s.VerifyWithLabel(k.LeafNode.SignatureKey, labelKeyPackage, k.TBS(), k.Signature); err != nil {
		return fmt.Errorf("mls: key package signature: %w", err)
	}
	return nil
}

// Ref returns the KeyPackageRef of k (RFC 9420 §5.2).
func (k *KeyPackage) Ref(s *suite.Suite) []byte { return s.MakeKeyPackageRef(k.Marshal()) }

// Sign sets g.Signature over its GroupInfoTBS.
func (g *GroupInfo) Sign(s *suite.Suite, signer *suite.Signer) error {
	sig, err := s.SignWithLabel(signer, labelGroupInfo, g.TBS())
	if err != nil {
		return fmt.Errorf("mls: sign group info: %w", err)
	}
	g.Signature = sig
	return nil
}

// Verify checks g's signature with the signer's public key (taken by the
// caller from the leaf g.Signer of the group's tree).
func (g *GroupInfo) Verify(s *suite.Suite, signerKey SignaturePublicKey) error {
	if err := s.VerifyWithLabel(signerKey, labelGroupInfo, g.TBS(), g.Signature); err != nil {
		return fmt.Errorf("mls: group info signature: %w", err)
	}
	return nil
}

// ProposalRef returns the ProposalRef of the proposal carried by a (RFC
// 9420 §5.2): RefHash("MLS 1.0 Proposal Reference", AuthenticatedContent).
func (a *AuthenticatedContent) ProposalRef(s *suite.Suite) []byte {
	return s.MakeProposalRef(a.Marshal())
}
