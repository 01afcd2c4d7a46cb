// Package mls implements the core of the Messaging Layer Security protocol
// (RFC 9420) for Hearth: the protocol data structures with their exact wire
// encodings, the tree math of the array-represented left-balanced binary
// tree, the ratchet tree with tree hashes and parent hashes, and TreeKEM
// (creating and processing UpdatePaths).
//
// # Layout
//
//	treemath.go        node/leaf indices, level, parent, sibling, direct path, copath (§4.1, App. C)
//	structs_*.go       every RFC 9420 struct with Marshal/Unmarshal (§5–§12), via keys/mls/codec
//	tree*.go           RatchetTree: nodes, resolution, filtered direct path, tree hash (§7.8),
//	                   parent hash (§7.9), add/update/remove with truncation (§7.7, §12.1)
//	treekem*.go        UpdatePath generation and processing (§7.4–§7.6)
//	welcome.go         GroupInfo signature check and GroupSecrets decryption (§12.4.3)
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
// A committer builds an UpdatePath with RatchetTree.GenerateUpdatePath,
// sends it inside a Commit, and other members apply it with
// RatchetTree.ProcessUpdatePath to learn the commit secret. Joiners get the
// tree from the ratchet_tree extension (UnmarshalRatchetTree), verify it
// (VerifyParentHashes, VerifyLeafSignatures) and read their secrets from a
// Welcome (OpenGroupSecrets).
package mls
