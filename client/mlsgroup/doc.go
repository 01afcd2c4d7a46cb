// Package mlsgroup plugs the RFC 9420 group state machine of keys/mls into
// the client's MLS seam (e2ee.Engine, e2ee.Group).
//
// A member's credential is a BasicCredential whose identity is the device
// address user@domain/DEVICE; its signature key is the device's Ed25519
// key listed on the user's signed device list, so every member is checked
// by the client's CredentialValidator (identity.Validator underneath).
// Groups use suite.Default (the hybrid ML-KEM-768+X25519 suite) unless the
// Engine says otherwise. KeyPackage private material is kept together with
// the KeyPackage itself, because joining needs both.
//
// Large groups (docs/decisions/0004-large-groups.md): commits add by value
// without a path and send a Welcome without the ratchet tree; Join takes
// the tree from the GroupInfo the hub delivers with the Welcome. Before
// processing a commit that adds several users, a group asks its validator
// to fetch their device lists in one batch (PrefetchMembers).
package mlsgroup
