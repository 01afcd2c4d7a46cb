// Package account logs this profile's device in and manages the user's
// devices: Login (or Register with an invite) on a connection of its own,
// the first device's identity key and first signed device list, approval
// of a pending device by another device (link code, sealed bundle) or by
// the recovery key, Devices, Revoke, and taking devices the server lists
// as revoked off the signed list. The account and the device's keys live
// in the profile store; Self is the device as an MLS member.
package account
