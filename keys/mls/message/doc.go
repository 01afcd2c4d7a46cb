// Package message holds the RFC 9420 data structures that travel between
// MLS clients, with their exact wire encodings, and the operations on a
// single message that need no group state: signing and verifying leaf
// nodes, KeyPackages and GroupInfos (§5, §7.2, §10, §12.4.3), references
// (§5.2), PublicMessage and PrivateMessage protection (§6), Welcome
// sealing and opening (§12.4.3.1), KeyPackage creation, and the envelope
// a server reads without secrets (Inspect).
//
// # Layout
//
//	encoding.go          Marshal/Unmarshal plumbing over keys/mls/codec; ErrMalformed
//	structs_*.go         every RFC 9420 struct with its exact wire encoding (§5–§12)
//	sign.go              LeafNode, KeyPackage and GroupInfo signatures; KeyPackage/Proposal refs
//	framing*.go          PublicMessage and PrivateMessage protection (§6); ErrAuth
//	welcome.go           Welcome sealing and opening (§12.4.3.1)
//	keypackage.go        NewKeyPackage and its private bundle
//	envelope.go          Inspect: what a server reads from a message without secrets
//
// # Encoding
//
// Every structure has Marshal and Unmarshal, which work on whole byte
// slices, and Encode and Decode, which write to a codec.Writer and read
// from a codec.Reader, for encodings built from several structures (the
// ratchet tree's hashes, saved group state).
//
// Every Unmarshal function reads network bytes: it rejects trailing bytes,
// unknown enum values (except extension types, which are kept opaque), and
// malformed optional flags, and never panics. A value that decodes
// re-encodes to exactly the bytes it came from.
package message
