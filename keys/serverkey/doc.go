// Package serverkey holds a homeserver's Ed25519 signing keys: the key
// that signs federation transactions, its key id, its validity window,
// and the set of older keys kept to verify what they signed. Private keys
// are used only through Key.Sign and stored only in 0600 files
// (WriteKeyFile), never in the database.
package serverkey
