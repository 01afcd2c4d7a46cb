// Package schedule implements the MLS key schedule (RFC 9420 §8), the
// pre-shared key secret (§8.4), the transcript hashes (§8.2) and the
// secret tree with its per-sender hash ratchets (§9).
//
// # Key schedule
//
// Each epoch starts from the previous epoch's init_secret, the
// commit_secret of the Commit (zero when it has no path), an optional
// psk_secret and the encoded GroupContext of the new epoch:
//
//	joiner_secret = ExpandWithLabel(Extract(init_secret, commit_secret), "joiner", GroupContext, Nh)
//	member        = Extract(joiner_secret, psk_secret)
//	welcome_secret = DeriveSecret(member, "welcome")
//	epoch_secret  = ExpandWithLabel(member, "epoch", GroupContext, Nh)
//
// and every epoch secret (sender data, encryption, exporter, external,
// confirmation key, membership key, resumption PSK, epoch authenticator,
// next init_secret) is DeriveSecret(epoch_secret, label). NewEpoch runs it
// for members; FromJoiner for new members who receive joiner_secret in a
// Welcome. The package takes GroupContext as encoded bytes: the struct
// belongs to the protocol layer.
//
// # Secret tree and its bounds
//
// SecretTree derives leaf secrets lazily from encryption_secret, deleting
// each parent once both children exist, and runs one handshake and one
// application ratchet per leaf. A receiver may skip ahead at most
// Limits.MaxForward generations in one message, and keeps the keys of
// skipped generations for at most Limits.MaxRetained generations behind
// the newest: older ones are deleted. Both bounds stop a sender from
// making a receiver derive or store unbounded keys. A key is deleted as
// soon as a message under it decrypts, so no generation decrypts twice
// (forward secrecy); a failed decryption changes nothing.
//
// Epoch.DropJoinerSecrets deletes joiner, welcome and epoch secrets once
// Welcomes are built; Epoch.Clear and SecretTree.Clear zero everything
// when an epoch is retired.
//
// Epoch and SecretTree marshal to bytes (keys/mls/codec encoding) so a
// client can save its state before it sends or acknowledges.
package schedule
