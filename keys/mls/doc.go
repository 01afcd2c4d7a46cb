// Package mls implements the Messaging Layer Security protocol (RFC 9420)
// for Hearth: the group state machine of a member (Group: create, add,
// remove, update, commit, process, Welcome and external joins,
// save/restore) and of the hub that holds no group secret (PublicGroup).
//
// # Packages
//
// The protocol is split by layer; imports run one way, from the top:
//
//	keys/mls            Group and PublicGroup: epochs, commits, joins, saved state
//	keys/mls/handshake  checks of proposals and commits that need no secret, shared by Group and PublicGroup
//	keys/mls/treekem    the ratchet tree, tree and parent hashes, leaf validation, TreeKEM (§7)
//	keys/mls/message    the RFC 9420 structures, their wire encodings, signatures, framing (§6), Welcome
//	keys/mls/schedule   key schedule, secret tree, transcript hashes (§8, §9)
//	keys/mls/treemath   node and leaf index arithmetic (§4.1, Appendix C)
//	keys/mls/suite      cipher suites: HPKE, signatures, KDF, AEAD (§5.1)
//	keys/mls/codec      the TLS presentation language encoding (§2.1)
//
// # Public surface
//
// Callers outside keys/mls import this package only. The names it needs
// from the subpackages (KeyPackage, Extensions, LeafIndex, TreeRef,
// Member, CredentialValidator, the content types and wire formats, the
// errors, NewKeyPackage, Inspect, …) are declared in api.go as type
// aliases, constants, variables holding the same error values, and thin
// functions: they are the subpackages' own, so values pass freely between
// the two spellings. Code inside keys/mls uses the subpackages directly.
//
// # Layout
//
//	api.go               the subpackages' names that callers use (aliases and thin functions)
//	group.go             Group, Config, accessors, errors
//	group_state.go       per-epoch state, retained past epochs
//	group_marshal.go     Group.Marshal / UnmarshalGroup
//	group_split.go       Group.MarshalSplit / UnmarshalGroupSplit: state without its ratchet trees, by TreeRef
//	join.go              NewGroup, JoinFromWelcome
//	external.go          JoinExternal (external commit)
//	commit.go            Commit, pending-commit flow, key schedule step
//	commit_process.go    processing others' commits (§12.4.2)
//	process.go           Process: verify, decrypt and dispatch received messages
//	send.go              Encrypt and the Propose* methods
//	seal.go              SealTo / OpenSealed: HPKE to a member's leaf key
//	groupinfo_tree.go    ReadGroupInfoTree: a GroupInfo's tree for a joiner whose Welcome omits it
//	inspect.go           InspectGroupInfo: what the hub reads from a GroupInfo without secrets
//	public.go            PublicGroup: the hub's public state; verifies commits and derives roster changes
//	public_marshal.go    PublicGroup.Marshal / UnmarshalPublicGroup
//
// # Group state machine and the hub
//
// A client holds one *Group per conversation. The hub orders handshake
// messages and accepts one commit per epoch, so committing is two-phase:
//
//	out, err := g.Commit(mls.CommitOptions{Add: kps})  // nothing changes yet
//	save(g.Marshal())                                   // the pending commit is saved too
//	send(out.Commit, out.Welcome, out.GroupInfo)        // to the hub
//	g.ApplyPendingCommit()    // hub accepted: new epoch
//	g.DiscardPendingCommit()  // hub refused (stale): Process the missed commits, commit again
//
// Received messages go through g.Process, which returns a Result (kind,
// sender, plaintext, roster changes). Every method that fails changes
// nothing (a receiver may lazily derive a sender's ratchet, which deletes
// nothing usable). Messages of the last Config.KeepEpochs epochs still
// decrypt; older ones fail with ErrEpoch. Every member added, updated or
// committing, and every member at join, passes Config.Validator.
//
// # The hub's public state
//
// The hub keeps a PublicGroup per conversation, started from the
// creator's GroupInfo (Group.GroupInfo) and advanced by every commit it
// accepts:
//
//	pg, err := mls.NewPublicGroup(groupInfo, nil, opts)
//	pg, info, err := pg.AddProposal(proposalMsg, opts) // for commits by reference
//	next, change, err := pg.Apply(commitMsg, opts)     // pg is unchanged; store next
//
// Apply runs the member's checks that need no secret (package handshake)
// and the public half of the UpdatePath (RatchetTree.VerifyUpdatePath in
// package treekem), and derives the roster change from the commit. Membership and confirmation
// tags and path ciphertexts need secrets and are left to the members.
package mls
