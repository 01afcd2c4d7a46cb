// Package mls implements the Messaging Layer Security protocol (RFC 9420)
// for Hearth: the protocol data structures with their exact wire
// encodings, the tree math of the array-represented left-balanced binary
// tree, the ratchet tree with tree hashes and parent hashes, TreeKEM
// (creating and processing UpdatePaths), message framing (§6) and the
// group state machine (Group: create, add, remove, update, commit,
// process, Welcome and external joins, save/restore).
//
// # Layout
//
//	treemath.go          node/leaf indices, level, parent, sibling, direct path, copath (§4.1, App. C)
//	encoding.go          Marshal/Unmarshal plumbing over keys/mls/codec; ErrMalformed
//	structs_*.go         every RFC 9420 struct with its exact wire encoding (§5–§12)
//	sign.go              LeafNode, KeyPackage and GroupInfo signatures; KeyPackage/Proposal refs
//	tree.go              RatchetTree: nodes, resolution, filtered direct path, add/update/remove, memoized encoding
//	                     with truncation (§7.7, §12.1)
//	treehash.go          tree hash (§7.8), parent hash and its verification (§7.9)
//	tree_verify.go       join-time tree integrity checks (§12.4.3.1)
//	leafvalidate.go      leaf node validation (§7.3)
//	treekem*.go          PrivateTree; UpdatePath generation and processing (§7.4–§7.6)
//	welcome.go           Welcome sealing and opening (§12.4.3.1)
//	framing*.go          PublicMessage and PrivateMessage protection (§6)
//	group.go             Group, Config, CredentialValidator, accessors, errors
//	group_state.go       per-epoch state, retained past epochs
//	group_marshal.go     Group.Marshal / UnmarshalGroup
//	group_split.go       Group.MarshalSplit / UnmarshalGroupSplit: state without its ratchet trees, by TreeRef
//	keypackage.go        NewKeyPackage and its private bundle
//	join.go              NewGroup, JoinFromWelcome
//	external.go          JoinExternal (external commit)
//	proposals.go         proposal validation (§12.2) and application order (§12.3)
//	epoch_view.go        checks of a handshake message that need no secret, shared by Group and PublicGroup
//	commit.go            Commit, pending-commit flow, key schedule step
//	commit_process.go    processing others' commits (§12.4.2)
//	process.go           Process: verify, decrypt and dispatch received messages
//	send.go              Encrypt and the Propose* methods
//	inspect.go           Inspect, InspectGroupInfo: what the hub reads without secrets
//	public.go            PublicGroup: the hub's public state; verifies commits and derives roster changes
//	public_marshal.go    PublicGroup.Marshal / UnmarshalPublicGroup
//
// Cryptography comes from keys/mls/suite; the key schedule, secret tree and
// transcript hashes live in keys/mls/schedule.
//
// # Decoding
//
// Every Unmarshal function reads network bytes: it rejects trailing bytes,
// unknown enum values (except extension types, which are kept opaque), and
// malformed optional flags, and never panics. A value that decodes
// re-encodes to exactly the bytes it came from.
//
// # Message flow
//
// A committer applies the commit's proposals to a clone of the tree
// (RatchetTree.ApplyProposal), builds an UpdatePath with
// RatchetTree.GenerateUpdatePath (excluding the leaves it just added) and
// seals a Welcome for new members with SealWelcome, giving each the path
// secret of its lowest common ancestor (PathResult.PathSecrets). Other
// members apply the same proposals and call RatchetTree.ProcessUpdatePath
// to learn the commit secret. A joiner opens the Welcome (OpenGroupSecrets,
// OpenGroupInfo, GroupInfo.Verify), reads the tree from the ratchet_tree
// extension (UnmarshalRatchetTree), checks it (RatchetTree.Verify and the
// tree hash against the GroupContext), finds itself (IndexOf) and seeds its
// private state (NewPrivateTree, WithJoinPathSecret).
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
// Apply runs the member's checks that need no secret (epochView) and the
// public half of the UpdatePath (RatchetTree.VerifyUpdatePath), and
// derives the roster change from the commit. Membership and confirmation
// tags and path ciphertexts need secrets and are left to the members.
package mls
