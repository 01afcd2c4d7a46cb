// Package handshake runs the checks of RFC 9420 on a proposal or commit
// of the current epoch that need no group secret (§12.1–§12.4.2): the
// sender and its signature key, each proposal on its own and the
// proposal list as a whole, applying the proposals in order to a
// provisional copy of the tree, the committer's leaf and its path leaf,
// and the next epoch's GroupContext. A View holds what the checks read;
// a member's Group and the hub's PublicGroup (both in keys/mls) each
// build one, so both accept and refuse the same messages, and only the
// member goes on to decrypt the path and run the key schedule.
//
// It also holds the vocabulary both share: Member, CredentialValidator,
// the errors the checks wrap, and the verification of a GroupInfo's tree
// that a joiner and the hub run (VerifyGroupInfoTree).
//
// # Layout
//
//	epoch_view.go        View: sender, proposal and commit checks; CachedProposal; CheckEpoch; NextContext
//	proposals.go         proposal list rules (§12.2) and their application in order (§12.3): Provisional
//	roster.go            Member, CredentialValidator, identity lookups
//	groupinfo_verify.go  the joiner's checks of a GroupInfo and its tree (§12.4.3.1)
//	errors.go            ErrEpoch, ErrGroup, ErrSender, ErrProposal, ErrCredential, ErrUnsupported
package handshake
