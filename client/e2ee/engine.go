package e2ee

import (
	"crypto/ed25519"

	"hearth/keys/groupauth"
)

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
// signature key appear on its user's validly signed device list. The
// client's implementation also fetches lists it does not have yet.
type CredentialValidator interface {
	ValidateMember(identity, signatureKey []byte) error
	// PrefetchMembers is called before checking many new members (a
	// commit adding a chunk of users) with their identities, so that
	// their device lists come in one batch instead of one round trip
	// each. It only warms the pins: members are still checked one by one.
	PrefetchMembers(identities [][]byte)
}

// Engine makes and restores MLS group states.
type Engine interface {
	NewKeyPackage(self Self) (KeyPackage, error)
	// Create starts a group with groupID at epoch 0 with self as its only
	// member; its GroupContext carries the group admin public key adminPub
	// (docs/decisions/0003), none if nil.
	Create(groupID []byte, self Self, v CredentialValidator, adminPub []byte) (Group, error)
	// Join processes a Welcome; private returns the private part of the
	// KeyPackage the Welcome names. It also returns that KeyPackage's ref.
	// Commits send Welcomes without the ratchet tree (large groups,
	// docs/decisions/0004-large-groups.md): groupInfo, the GroupInfo
	// delivered with the Welcome, then supplies it. The join verifies the
	// tree against the Welcome's GroupContext; a GroupInfo of another group
	// or epoch is refused. groupInfo is nil when the Welcome has the tree.
	Join(welcome, groupInfo []byte, self Self, private func(ref []byte) ([]byte, error), v CredentialValidator) (Group, []byte, error)
	// ReadGroupInfo returns the group id, epoch and member device
	// addresses of an MLSMessage(GroupInfo) with a ratchet tree, without
	// verifying anything.
	ReadGroupInfo(groupInfo []byte) (group string, epoch uint64, members []string, err error)
	// JoinExternal joins a group by external commit from its GroupInfo
	// (the hub keeps the latest). A device linked after a conversation
	// started uses it to enter that conversation instead of waiting to be
	// added. The returned Commit is pending until the hub accepts it.
	JoinExternal(groupInfo []byte, self Self, v CredentialValidator) (Group, Commit, error)
	// Load restores a state saved with Group.MarshalSplit, asking tree for
	// each ratchet tree by reference, or a whole state saved with
	// Group.Marshal (tree may then be nil). The restored group may keep
	// the bytes tree returns.
	Load(state []byte, tree func(ref []byte) ([]byte, error), self Self, v CredentialValidator) (Group, error)
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
	// CommitAdmin commits like Commit, optionally replacing the group admin
	// key and carrying the admin signature (docs/decisions/0003).
	CommitAdmin(AdminCommit) (Commit, error)
	// GroupInfo is the signed GroupInfo of the current epoch (with the
	// ratchet tree): the creator sends epoch 0's at CreateConversation so
	// the hub can start the conversation's public state (docs/groups.md).
	GroupInfo() ([]byte, error)
	// AdminKey is the group admin public key of the GroupContext (nil: a
	// 1:1, which has none).
	AdminKey() []byte
	// EpochAuthenticator is the RFC 9420 epoch authenticator.
	EpochAuthenticator() []byte
	// SealTo encrypts to one member device's current leaf key; OpenSealed
	// opens what was sealed to this device's.
	SealTo(member, label string, context, pt []byte) ([]byte, error)
	OpenSealed(label string, context, ct []byte) ([]byte, error)
	// Marshal serializes the whole state (secrets included, and the pending
	// commit if any).
	Marshal() ([]byte, error)
	// MarshalSplit serializes the state without its ratchet trees, which
	// are most of a big group's state (about 1.4 MB for 1,024 members on
	// the default suite) and which a message never changes, so the store
	// keeps each tree once. It returns the rest of the state and the
	// encodings of the trees it refers to, by opaque reference. The tree
	// bytes may be shared with the group: do not modify them.
	MarshalSplit() (state []byte, trees map[string][]byte, err error)
}
