// Package suite implements the MLS cipher suites of RFC 9420 §5.1 and §17.1
// on the Go standard library (crypto/hpke, crypto/ecdsa, crypto/ed25519,
// crypto/hkdf) and golang.org/x/crypto (ChaCha20-Poly1305).
//
// A *Suite, obtained with Lookup, provides every cryptographic primitive MLS
// needs: the hash, HKDF Extract/Expand and the labeled derivations
// (ExpandWithLabel, DeriveSecret, DeriveTreeSecret), HMAC, the AEAD, HPKE
// (SealBase/OpenBase and EncryptWithLabel/DecryptWithLabel), HPKE key pairs
// (DeriveKeyPair, GenerateKeyPair), signatures (SignWithLabel,
// VerifyWithLabel, GenerateSignatureKey) and reference hashes (RefHash,
// MakeKeyPackageRef, MakeProposalRef). Labeled structs (KDFLabel,
// SignContent, EncryptContext, RefHashInput) are encoded with keys/mls/codec.
//
// # Suites
//
//	0x0001 MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519        (mandatory)
//	0x0002 MLS_128_DHKEMP256_AES128GCM_SHA256_P256
//	0x0003 MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519
//	0x0005 MLS_256_DHKEMP521_AES256GCM_SHA512_P521
//	0x0007 MLS_256_DHKEMP384_AES256GCM_SHA384_P384
//	0xF001 HEARTH_MLKEM768X25519_AES256GCM_SHA256_Ed25519      (Hearth default)
//
// Suites 4 and 6 (X448/Ed448) are not implemented: neither the standard
// library nor x/crypto has X448 or Ed448. Lookup reports them as
// unsupported.
//
// # The hybrid post-quantum suite 0xF001
//
// 0xF001 lies in the private-use range (0xF000-0xFFFF) of the MLS cipher
// suite registry; only Hearth clients understand it. Its parts:
//
//   - KEM: MLKEM768-X25519 ("X-Wing", HPKE KEM 0x647A, draft-ietf-hpke-pq)
//     from crypto/hpke. A group secret sealed to a member's HPKE key stays
//     confidential unless both ML-KEM-768 and X25519 are broken, so
//     recorded traffic resists a future quantum computer ("harvest now,
//     decrypt later"). Public keys are 1216 bytes, encapsulations 1120
//     bytes, private keys the 32-byte seed.
//   - KDF and hash: HKDF-SHA256 / SHA-256 (Nh = 32). SHA-256 keeps about
//     128 bits of preimage resistance against Grover's algorithm, which
//     matches ML-KEM-768's category-3 margin for the secrets MLS derives
//     (every secret is Nh = 32 bytes), and keeps the key schedule, tree
//     hashes and references the same size as suite 1. A SHA-384/512 KDF
//     would add cost and size without raising the weakest link.
//   - AEAD: AES-256-GCM (Nk = 32, Nn = 12). 256-bit keys leave a 128-bit
//     margin against Grover for the message keys; AES-GCM has hardware
//     support on every platform Hearth targets.
//   - Signatures: Ed25519, as in suite 1. Authentication only has to hold
//     at the time a message is checked, so a classical signature is not a
//     harvest-now risk; device lists and credentials stay compatible with
//     suite 1.
//
// # Key encodings
//
// HPKEPublicKey and HPKEPrivateKey are RFC 9180 SerializePublicKey and
// SerializePrivateKey outputs. SignaturePublicKey is the raw 32-byte
// Ed25519 key or the uncompressed SEC1 point for ECDSA. Private signature
// keys (Signer.PrivateBytes) are the 32-byte Ed25519 seed or the ECDSA
// scalar as a big-endian field-size integer. ECDSA signatures are DER
// (ASN.1) encoded and computed over the suite hash of the SignContent.
// These are the encodings of RFC 9420 and of the IETF test vectors.
package suite
