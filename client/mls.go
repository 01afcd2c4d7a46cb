package client

import (
	"crypto/ed25519"
	"errors"

	"hearth/keys/groupauth"
)

// The MLS seam. The conversation layer talks to MLS only through these
// interfaces; the RFC 9420 group state machine of keys/mls implements them
// (wired in cmd/hearth). Until it is wired, Config.Groups is nil and every
// operation that needs end-to-end encryption fails with ErrNoE2EE: there is
// no path that sends or accepts chat text without MLS.

// ErrNoE2EE is returned by messaging operations when no MLS engine is configured.
var ErrNoE2EE = errors.New("client: end-to-end encryption (MLS group engine) is not available in this build")

// Self is this device as an MLS member: its address user@domain/DEVICE and
// the Ed25519 signature key listed for it on the user's signed device list.
type Self struct {
	Address      string
	SignatureKey ed25519.PrivateKey
}

// KeyPackage is a freshly made KeyPackage: Message is the MLSMessage bytes to
// publish, Ref its reference, Private what joining with it needs later.
type KeyPackage struct {
	Message []byte
	Ref     []byte
	Private []byte
}

// CredentialValidator accepts a group member only when its BasicCredential
// identity (the UTF-8 device address user@domain/DEVICE) and its leaf
// signature key appear on its user's validly signed device list.
// *identity.Validator has this method; the client's implementation also
// fetches lists it does not have yet.
type CredentialValidator interface {
	ValidateMember(identity, signatureKey []byte) error
}

// GroupEngine makes and restores MLS group states.
type GroupEngine interface {
	NewKeyPackage(self Self) (KeyPackage, error)
	// Create starts a group with groupID at epoch 0 with self as its only member.
	Create(groupID []byte, self Self, v CredentialValidator) (Group, error)
	// Join processes a Welcome; private returns the private part of the
	// KeyPackage the Welcome names. It also returns that KeyPackage's ref.
	Join(welcome []byte, self Self, private func(ref []byte) ([]byte, error), v CredentialValidator) (Group, []byte, error)
	// Load restores a state saved with Group.Marshal.
	Load(state []byte, self Self, v CredentialValidator) (Group, error)
}

// ExternalJoiner is implemented by engines that can join a group by
// external commit from its GroupInfo (the hub keeps the latest). A device
// linked after a conversation started uses it to enter that conversation
// instead of waiting to be added; without it, it waits (a member adds it
// on its next send) or starts a new conversation. The returned Commit is
// pending until the hub accepts it.
type ExternalJoiner interface {
	JoinExternal(groupInfo []byte, self Self, v CredentialValidator) (Group, Commit, error)
}

// SplitGroup is a Group that can save its state without its ratchet
// trees. The trees are most of a big group's state (about 1.4 MB for
// 1,024 members on the default suite) and a message never changes them,
// so the client stores each tree once and saves only the rest after every
// message. MarshalSplit returns that rest and the encodings of the trees
// it refers to, by opaque reference (none: the state is whole). The tree
// bytes may be shared with the group: do not modify them.
type SplitGroup interface {
	Group
	MarshalSplit() (state []byte, trees map[string][]byte, err error)
}

// SplitEngine restores states saved with SplitGroup.MarshalSplit, asking
// tree for each tree by reference, and whole states saved with Marshal.
// The restored group may keep the bytes tree returns.
type SplitEngine interface {
	LoadSplit(state []byte, tree func(ref []byte) ([]byte, error), self Self, v CredentialValidator) (Group, error)
}

// Received is what processing an incoming MLS message yields.
type Received struct {
	Sender      string // device address from the sender's validated credential
	Application bool   // true: Plaintext is an application message
	Plaintext   []byte
	// For a commit: the roster change, its authenticated_data, the epoch
	// it left and the group admin key before and after it.
	Commit                        bool
	EpochBefore                   uint64
	Added, Removed                []string
	AuthenticatedData             []byte
	AdminKeyBefore, AdminKeyAfter []byte
	ExtChanged                    bool
}

// AdminCommit is a commit that may replace the group admin key and carry
// the admin signature: Sign gets the epoch and the commit's roster change
// and returns the authenticated_data (nil: none).
type AdminCommit struct {
	KeyPackages [][]byte
	Remove      []string
	SetAdminKey bool
	NewAdminKey []byte
	Sign        func(epoch uint64, ch groupauth.Change) []byte
}

// AdminGroup is a Group of an engine that supports Hearth group roles
// (docs/decisions/0003).
type AdminGroup interface {
	Group
	AdminKey() []byte
	EpochAuthenticator() []byte
	CommitAdmin(AdminCommit) (Commit, error)
	// SealTo encrypts to one member device's current leaf key; OpenSealed
	// opens what was sealed to this device's.
	SealTo(member, label string, context, pt []byte) ([]byte, error)
	OpenSealed(label string, context, ct []byte) ([]byte, error)
}

// AdminEngine creates groups carrying a group admin public key.
type AdminEngine interface {
	CreateWithAdmin(groupID []byte, self Self, v CredentialValidator, adminPub []byte) (Group, error)
}

// Commit is a commit this device made and has not yet merged: it is merged
// once the hub accepts it, and discarded when the hub refuses it.
type Commit struct {
	Message   []byte   // MLSMessage(PublicMessage) carrying the Commit
	Welcome   []byte   // MLSMessage(Welcome) for the added devices, if any
	GroupInfo []byte   // MLSMessage(GroupInfo) for the new epoch
	Added     []string // device addresses added
	Removed   []string // device addresses removed
}

// Group is one conversation's MLS state.
type Group interface {
	Epoch() uint64
	// Members lists member device addresses.
	Members() []string
	// Encrypt makes an MLSMessage(PrivateMessage) and advances the sender ratchet.
	Encrypt(plaintext []byte) ([]byte, error)
	// Process handles an incoming PrivateMessage or PublicMessage(Commit).
	// Processing another member's commit drops this device's pending commit.
	Process(msg []byte) (Received, error)
	// Commit proposes adding the devices of keyPackages and removing devices.
	Commit(keyPackages [][]byte, remove []string) (Commit, error)
	// MergeCommit applies the pending commit after the hub accepted it.
	MergeCommit() error
	// DiscardCommit drops the pending commit after the hub refused it.
	DiscardCommit()
	// Marshal serializes the whole state (secrets included, and the pending
	// commit if any) for the store.
	Marshal() ([]byte, error)
}
