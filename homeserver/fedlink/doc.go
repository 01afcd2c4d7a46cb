// Package fedlink is the homeserver's federation: it joins the conversation
// hub (homeserver/hub) and the local directory to the server-to-server
// protocol of package federation. It knows sessions only through the small
// interfaces it declares (Notifier, Sessions, Directory, Presence,
// MediaSource), never the homeserver itself.
//
// # Message flow (docs/federation.md)
//
//	follower                                   hub
//	Send to conv@hub  -> Submit: pending row +
//	                     SUBMIT queued (one tx)  -> applySubmit: hub.Accept,
//	                                                DELIVER queued per other
//	                                                server with members,
//	                  <- SUBMIT_RESULT queued  <-   verdict queued either way
//	applyResult: dedup record, Await returns
//	                  <- DELIVER (conversation order, prev seq named)
//	applyDeliver: hub.ApplyDeliver (log copy, local mailboxes)
//
// A local Send to a conversation hubbed here goes through Accept:
// hub.Accept, then one DELIVER per other server with members, in the same
// transaction. A DELIVER that expires becomes a delivery-failed notice for
// the sending device (failed.go). Device lists travel as DEVICE_LIST
// envelopes (a version gap triggers a signed re-fetch); device lists,
// KeyPackages and remote media ranges are read with signed queries
// (Query). Typing and presence travel on the lossy signal path
// (signals.go, presence.go).
//
// Error codes: the wire.Code of the homeserver and the fedwire.Code of
// the federation protocol meet only in codes.go, one table read both ways.
//
// Unreachable peers: a query to a peer that is down (its queue backs off
// after no answer, or its last query got none) fails at once with
// CODE_UNAVAILABLE until the backoff runs out (peerdown.go); a domain
// that cannot have a server is CODE_NOT_FOUND from discovery
// (federation.Discovery, wired in peers.go with the injectable Resolver).
//
// Keys: the signing key rotates (RotateKey) and lives in
// Config.KeyDir/federation.key (0600), never in the database; the current
// key is published with a validity window of Config.KeyValidity and
// retired keys with their end (keys.go). A peer's unknown key id, or a key
// whose window ended, makes the link re-fetch that peer's key document,
// rate-limited (RefreshServerKeys).
package fedlink
