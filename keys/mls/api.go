package mls

import (
	"io"

	"hearth/keys/mls/handshake"
	"hearth/keys/mls/message"
	"hearth/keys/mls/suite"
	"hearth/keys/mls/treekem"
	"hearth/keys/mls/treemath"
)

// The names below are package mls's public surface for what lives in its
// subpackages: the types, constants and functions a client or server
// needs next to Group and PublicGroup, so that importing keys/mls is
// enough to use them. Each is the subpackage's own (an alias or the same
// value), so values pass freely between the two spellings.

// Wire structures (package message).
type (
	Capabilities      = message.Capabilities
	ContentType       = message.ContentType
	Credential        = message.Credential
	Envelope          = message.Envelope
	ExtensionType     = message.ExtensionType
	Extensions        = message.Extensions
	GroupContext      = message.GroupContext
	KeyPackage        = message.KeyPackage
	KeyPackageOptions = message.KeyPackageOptions
	KeyPackagePrivate = message.KeyPackagePrivate
	MLSMessage        = message.MLSMessage
	PreSharedKeyID    = message.PreSharedKeyID
	Proposal          = message.Proposal
	Sender            = message.Sender
	WireFormat        = message.WireFormat
)

// Content types and wire formats (package message).
const (
	ContentApplication = message.ContentApplication
	ContentProposal    = message.ContentProposal
	ContentCommit      = message.ContentCommit

	WirePublicMessage  = message.WirePublicMessage
	WirePrivateMessage = message.WirePrivateMessage
	WireWelcome        = message.WireWelcome
	WireGroupInfo      = message.WireGroupInfo
	WireKeyPackage     = message.WireKeyPackage

	// SenderMember: a PublicMessage sent by a member's leaf.
	SenderMember = message.SenderMember
)

// Errors of the subpackages that Group and PublicGroup methods wrap.
var (
	// ErrEpoch: a message for an epoch this member no longer (or not yet)
	// has keys for.
	ErrEpoch = handshake.ErrEpoch
	// ErrGroup: a message for another group.
	ErrGroup = handshake.ErrGroup
	// ErrSender: the sender is not a member (blank or absent leaf).
	ErrSender = handshake.ErrSender
	// ErrProposal: a proposal or proposal list breaks RFC 9420 §12.2.
	ErrProposal = handshake.ErrProposal
	// ErrCredential: the credential validator refused a member.
	ErrCredential = handshake.ErrCredential
	// ErrUnsupported: a feature this implementation refuses (ReInit).
	ErrUnsupported = handshake.ErrUnsupported
	// ErrMalformed wraps every decoding failure.
	ErrMalformed = message.ErrMalformed
	// ErrAuth: a signature, membership tag or confirmation tag does not
	// verify, or decryption fails.
	ErrAuth = message.ErrAuth
	// ErrTree wraps every structural error of a ratchet tree.
	ErrTree = treekem.ErrTree
)

// Members and their credentials (package handshake).
type (
	// CredentialValidator decides whether a member's credential is
	// acceptable; *identity.Validator implements it.
	CredentialValidator = handshake.CredentialValidator
	// AcceptAll accepts every member (tests, interop vectors).
	AcceptAll = handshake.AcceptAll
	// Member is one leaf of the group.
	Member = handshake.Member
)

// LeafIndex is the index of a leaf of the ratchet tree (package treemath).
type LeafIndex = treemath.LeafIndex

// TreeRef names a ratchet tree encoding in a split state (package treekem).
type TreeRef = treekem.TreeRef

// BasicCredential returns a basic credential with the given identity
// (for Hearth: `user@domain/DEVICE`).
func BasicCredential(identity string) Credential { return message.BasicCredential(identity) }

// NewKeyPackage makes a signed KeyPackage with fresh init and leaf keys
// (message.NewKeyPackage).
func NewKeyPackage(s *suite.Suite, rnd io.Reader, signer *suite.Signer, cred Credential,
	opts KeyPackageOptions) (*KeyPackage, *KeyPackagePrivate, error) {
	return message.NewKeyPackage(s, rnd, signer, cred, opts)
}

// DecodeKeyPackage reads and verifies an MLSMessage(KeyPackage)
// (message.DecodeKeyPackage).
func DecodeKeyPackage(msg []byte) (*KeyPackage, error) { return message.DecodeKeyPackage(msg) }

// UnmarshalKeyPackagePrivate decodes a private bundle
// (message.UnmarshalKeyPackagePrivate).
func UnmarshalKeyPackagePrivate(b []byte) (*KeyPackagePrivate, error) {
	return message.UnmarshalKeyPackagePrivate(b)
}

// Inspect decodes msg's envelope without verifying anything
// (message.Inspect).
func Inspect(msg []byte) (*Envelope, error) { return message.Inspect(msg) }

// PeekWireFormat reads the wire format from msg's header alone
// (message.PeekWireFormat).
func PeekWireFormat(msg []byte) (WireFormat, bool) { return message.PeekWireFormat(msg) }
