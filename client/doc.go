// Package client is the Go client library for Hearth: one device's
// conversations on top of its session, its MLS group states and its local
// store. Client is the conversation layer; each package below it has one
// job and knows nothing of the Client:
//
//	Client           one device's profile: Login, Approve, Devices, Revoke
//	                 (client/account), Queue + Flush (send), Receive,
//	                 History, groups, media; it creates and joins
//	                 conversations, keeps their rosters in line with the
//	                 users' signed device lists, seals outgoing messages
//	                 and processes deliveries (Welcomes, commits, messages)
//	client/session   one authenticated control stream kept up: reconnect,
//	                 Hello/Refresh, Sync, deliveries in order, cumulative
//	                 acks; Conn multiplexes requests by frame id
//	client/outbox    sends the queued messages in order, at most one per
//	                 conversation in flight, and moves accepted ones to
//	                 history; an item refused for good is marked failed
//	client/account   login, registration, device approval, the user's
//	                 signed device list, revocation
//	client/directory fetch, verify and pin users' signed device lists;
//	                 the MLS credential validators
//	client/e2ee      the MLS seam (Engine, Group; client/mlsgroup
//	                 implements it) and the cache of parsed group states
//	client/transfer  encrypted media: resumable upload, checked download
//	client/store     the profile's bbolt store
//
// # Durability rules
//
// Every state change is committed to the store (bbolt fsyncs) before the
// client sends or acknowledges anything that depends on it:
//
//   - A message is queued in the outbox before any attempt. It is encrypted
//     once; the ciphertext, the request and the advanced group state are
//     stored in one transaction, and every retry sends those same bytes
//     under the same message id, so the server's deduplication makes a retry
//     after a lost SendOK harmless. SendOK moves it to history.
//   - A commit (adding or removing devices) is stored with the group state
//     holding it as pending; it is merged when the hub accepts it and
//     dropped when the hub refuses it as stale.
//   - A delivery's effects (group state, history, inbox for `recv`) and its
//     mailbox sequence are stored in one transaction before the Ack; a
//     delivery pushed again after a lost Ack is recognised by its sequence.
//
// # Trust
//
// Users' identity keys are pinned on first use and kept in the store with
// the newest verified device list; MLS members are accepted only when they
// are on their user's validly signed list (identity.Validator). Approving
// a device checks the link key the server returns against the fingerprint
// in the link code, so the server cannot substitute its own key.
package client
