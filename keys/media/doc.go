// Package media encrypts files for Hearth's media messages: a file is
// encrypted client-side with a fresh random 256-bit key, in fixed-size
// chunks, so that it can be uploaded with resume and downloaded and
// decrypted as a stream in constant memory. The server only ever holds
// ciphertext; the key, the ciphertext's SHA-256 and its size travel inside
// the end-to-end encrypted message that refers to the file.
//
// # Format (version 1)
//
// The plaintext is cut into chunks of ChunkSize (64 KiB) bytes; the last
// chunk is shorter, or a full chunk when the size is a multiple of
// ChunkSize, and is empty only for an empty file. Each chunk i is sealed
// with AES-256-GCM (16-byte tag, no additional data) under
//
//	aesKey = HKDF-SHA256(ikm = file key, salt = none, info = "hearth media v1 aes-256-gcm")
//	nonce  = uint88_be(i) || final   (final = 0x01 for the last chunk, 0x00 otherwise)
//
// and the sealed chunks are concatenated. This is the STREAM construction
// (Hoang, Reyhanitabar, Rogaway, Vizár 2015) in the shape age and C2SP's
// chunked-encryption text use: because the nonce binds the index, chunks
// cannot be reordered, dropped or duplicated; because it binds the final
// flag, a stream cannot be truncated at a chunk boundary (the new last
// chunk was sealed as non-final) nor extended (the real last chunk was
// sealed as final). Chunks of another file were sealed under another key.
// A key is used for one file only, so counter nonces never repeat.
//
// AES-GCM is not key-committing; the message that carries the key also
// carries the SHA-256 of the ciphertext, which receivers check before
// decrypting (client.FetchMedia), so a sender cannot make two recipients
// decrypt the same reference to different plaintexts.
//
// Decrypt writes each chunk only after it authenticated, but a truncated
// or corrupted stream is only detected when it is reached: output written
// before the error is authentic yet incomplete. Callers that need
// all-or-nothing decrypt into a temporary file and discard it on error.
package media
