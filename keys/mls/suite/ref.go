package suite

import "hearth/keys/mls/codec"

// RefHash is RFC 9420 §5.2's RefHash(label, value) =
// Hash(RefHashInput{label, value}). The label is used as given.
func (s *Suite) RefHash(label string, value []byte) []byte {
	w := codec.NewWriter(nil)
	w.Opaque([]byte(label))
	w.Opaque(value)
	return s.Hash(w.Bytes())
}

// MakeKeyPackageRef is RefHash("MLS 1.0 KeyPackage Reference", keyPackage)
// over the encoded KeyPackage.
func (s *Suite) MakeKeyPackageRef(keyPackage []byte) []byte {
	return s.RefHash("MLS 1.0 KeyPackage Reference", keyPackage)
}

// MakeProposalRef is RefHash("MLS 1.0 Proposal Reference", authenticatedContent)
// over the encoded AuthenticatedContent carrying the proposal.
func (s *Suite) MakeProposalRef(authenticatedContent []byte) []byte {
	return s.RefHash("MLS 1.0 Proposal Reference", authenticatedContent)
}
