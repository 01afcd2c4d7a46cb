// Package treekem is the ratchet tree of an MLS group and TreeKEM over it
// (RFC 9420 §7): the public tree (RatchetTree: nodes, resolutions,
// filtered direct paths, adding, updating and removing leaves, its
// memoized encoding and TreeRef), tree hashes and parent hashes (§7.8,
// §7.9), the integrity checks a joiner runs (§12.4.3.1), leaf node
// validation (§7.3), and UpdatePaths: generating one, verifying its public
// half, and processing one with a member's private keys (PrivateTree).
//
// # Layout
//
//	tree.go              RatchetTree: nodes, resolution, filtered direct path, add/update/remove (§4.1, §7.7, §12.1)
//	treeref.go           TreeRef and the shared-bytes decoding of a stored tree
//	treehash.go          tree hash (§7.8), parent hash and its verification (§7.9)
//	tree_verify.go       join-time tree integrity checks (§12.4.3.1)
//	leafvalidate.go      leaf node validation (§7.3)
//	treekem.go           UpdatePath generation, public verification and processing (§7.4–§7.6)
//	treekem_private.go   PrivateTree: a member's private keys on its direct path
//
// A committer applies the commit's proposals to a clone of the tree
// (RatchetTree.ApplyProposal), builds an UpdatePath with
// RatchetTree.GenerateUpdatePath (excluding the leaves it just added) and
// gives each new member the path secret of their lowest common ancestor
// (PathResult.PathSecrets). Other members apply the same proposals and
// call RatchetTree.ProcessUpdatePath to learn the commit secret; a server
// without secrets calls RatchetTree.VerifyUpdatePath. A joiner reads the
// tree from the ratchet_tree extension (UnmarshalRatchetTree), checks it
// (RatchetTree.Verify and the tree hash against the GroupContext), finds
// itself (IndexOf) and seeds its private state (NewPrivateTree,
// WithJoinPathSecret).
package treekem
