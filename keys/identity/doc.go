// Package identity is Hearth's identity layer on top of MLS.
//
// Every user has an Ed25519 identity key, derived deterministically from a
// 32-byte recovery secret that the user is shown once as text
// ("HRK1-XXXX-…", RecoveryKey). The identity key signs the user's
// DeviceList: the versioned list of the user's devices with each device's
// MLS signature public key. The list's canonical encoding (keys/mls/codec)
// is exactly the byte string carried in wire.SignedDeviceList.list; it is
// verified as received and never re-serialized.
//
// An MLS member's BasicCredential identity is the UTF-8 device address
// "user@domain/DEVICE". Validator checks that such a member is a device on
// its user's validly signed list, with exactly the signature key the list
// names; it works on plain bytes so keys/mls can declare a one-method
// interface that it satisfies.
//
// Device linking: a new (pending) device holds an X25519 link key pair and
// shows the link code TOKEN-FINGERPRINT, where TOKEN is the server's lookup
// token and FINGERPRINT is LinkFingerprint of its own link public key. An
// existing device sends only TOKEN to the server, checks the link key the
// server returns against FINGERPRINT (CheckLinkKey) — so the server cannot
// substitute a key of its own — adds the device to a new signed list and
// seals a Bundle (the recovery secret) to the link key with HPKE
// (SealBundle), bound to the new device's address.
package identity
