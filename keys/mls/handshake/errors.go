package handshake

import "errors"

// Errors of the checks on handshake messages, which Group and
// PublicGroup methods wrap.
var (
	// ErrEpoch: a message for an epoch this member no longer (or not yet)
	// has keys for.
	ErrEpoch = errors.New("mls: wrong epoch")
	// ErrGroup: a message for another group.
	ErrGroup = errors.New("mls: wrong group")
	// ErrSender: the sender is not a member (blank or absent leaf).
	ErrSender = errors.New("mls: unknown sender")
	// ErrProposal: a proposal or proposal list breaks RFC 9420 §12.2.
	ErrProposal = errors.New("mls: invalid proposal")
	// ErrCredential: the credential validator refused a member.
	ErrCredential = errors.New("mls: credential refused")
	// ErrUnsupported: a feature this implementation refuses (ReInit).
	ErrUnsupported = errors.New("mls: unsupported")
)
