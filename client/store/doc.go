// Package store is the Hearth client's local store: one bbolt file in the
// profile folder, holding everything a device must remember across runs.
//
// Buckets:
//
//	account  the device's login: user, device id, server address, CA path, tokens
//	keys     secret key material by name (identity seed, MLS signature key,
//	         link key) and KeyPackage private keys by reference
//	groups   the serialized MLS state of each conversation (opaque bytes)
//	outbox   unsent messages in send order, indexed by message id
//	history  per conversation, messages keyed by conversation sequence
//	sync     the last processed mailbox sequence and small client metadata
//	inbox    received messages not yet printed by `hearth chat recv`
//
// Every write is one bbolt transaction, which fsyncs before it returns.
// Callers commit a state change before they send or acknowledge anything
// that depends on it, so a crash at any point leaves a state from which the
// client resumes: at worst a message is sent again under the same message id
// (the server deduplicates) or a delivery is pushed again after an ack was
// lost (Apply skips mailbox sequences already processed).
//
// Update runs several changes in one transaction (for example a new group
// state, an encrypted outbox entry and a history entry), so they become
// durable together or not at all.
package store
