// Package keydir is the key directory of one server's users: identity
// keys, signed device lists, devices (approval, revocation) and MLS
// KeyPackages. The server stores device lists only as signed by the
// user's identity key and never adds a device to one (verifyList).
//
// # Requests (from an authenticated device, Caller)
//
//	PublishIdentity     first device: identity key + first signed list
//	PublishDeviceList   a grown version, signed, naming only active devices
//	ApproveDevice       a pending device onto the list (or itself with the
//	                    recovery key, docs/decisions/0002)
//	RevokeDevice        off the list, with the successor list when listed
//	PublishKeyPackages  single-use packages and one last-resort package
//	ClaimLocal          one package per active listed device, all or nothing
//	LocalDeviceList(s)  signed lists, from the cache (listcache.go)
//
// A new list is handed to Propagate in the transaction that stores it, so
// federation (fedlink.DeviceListQueuer) queues it for the other servers.
// Remote users' lists and packages are fetched by the session layer
// through federation; this package knows nothing of sessions or peers.
package keydir
