// Package media encrypts files for Hearth's media messages: a file is
// encrypted client-side with a fresh random 256-bit key, in fixed-size
// chunks, so that it can be uploaded with resume and downloaded and
// decrypted as a stream in constant memory. The server only ever holds
// ciphertext; the key, the ciphertext's SHA-256 and the size travel inside
// the end-to-end encrypted message that refers to the file.
//
// # Format
//
// C2SP chunked encryption (https://c2sp.org/chunked-encryption) in its
// Cobblestone-256 instantiation: AES-256-GCM with HKDF-SHA-512, checked
// against the Wycheproof test vectors (media_kat_test.go), with the
// context string Context. Per file:
//
//	salt                            24 random bytes
//	key || base nonce || commitment = HKDF-Expand(SHA-512, prk = file key,
//	    info = "c2sp.org/chunked-encryption@v1+AEAD_AES_256_GCM" || 0x00 || salt || context)
//	ciphertext = salt || commitment || chunk 0 || chunk 1 || ...
//
// The plaintext is cut into 16 KiB chunks; the final chunk is always
// shorter (empty when the size is a multiple of 16 KiB), which marks the
// end. Chunk i is sealed with AES-256-GCM under key, with nonce
// base nonce XOR i (big-endian) and no additional data.
//
// Because the nonce binds the index, chunks cannot be reordered, dropped
// or duplicated; because only the last chunk may be short, a stream cut
// at a chunk boundary or extended is refused; chunks of another file were
// sealed under another key. The 32-byte commitment makes a wrong key fail
// before any chunk is decrypted and gives key commitment (the same
// ciphertext cannot decrypt under two keys), so two recipients of one
// reference always get the same plaintext; the message also carries the
// ciphertext's SHA-256, checked before decrypting (client.FetchMedia).
//
// Decrypt writes each chunk only after it authenticated, but a truncated
// or corrupted stream is only detected when it is reached: output written
// before the error is authentic yet incomplete. Callers that need
// all-or-nothing decrypt into a temporary file and discard it on error.
package media
