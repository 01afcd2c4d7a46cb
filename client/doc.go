// Package client is the Go client library for Hearth: one device's
// conversations on top of its session, its MLS group states and its local
// store.
//
// # Parts
//
// Client wires the parts together in Open and keeps the exported API;
// no part holds a pointer back to it (each gets the few funcs it needs).
//
//	Client            the profile: Login, Approve, Devices, Revoke, Queue +
//	                  Flush, Receive, History, media, typing and presence
//	Groups            group operations: create, members, roles, leave
//	sealer            an outbox item's conversation (created, or joined by
//	                  external commit) and its encryption (outbox Seal)
//	receiver          the mailbox deliveries: Welcomes, commits, messages;
//	                  marks conversations it cannot follow out of step;
//	                  parks one whose delivery waits for a device list
//	                  (parked.go), so the others go on
//	healer            rejoins out-of-step conversations by external commit
//	                  and reports what could not be decrypted (0006)
//	deviceSync        conversations in step with the user's device changes
//	receipts          delivery and read receipts: queued (merged) in the
//	                  outbox with what causes them, applied to per-user
//	                  marks; message state in History (docs/receipts.md);
//	                  while Receive runs they wait a coalescing window in
//	                  their own send queue (receipts_flush.go)
//	settings          the user's settings, synced through the settings
//	                  group of its own devices
//	keyPackages       this device's published KeyPackages
//	link              the session, started on first use
//
//	client/outbox     sends queued messages, one queue per conversation
//	                  with at most one item in flight and its own backoff;
//	                  an item refused for good is marked failed
//	client/roster     rosters in line with the signed device lists;
//	                  pending commits, KeyPackage claims
//	client/convstate  conversation records and MLS states in the store
//	client/session    one authenticated control stream kept up
//	client/account    login, registration, approval, the signed list
//	client/directory  fetch, verify and pin users' device lists
//	client/e2ee       the MLS seam (Engine, Group) and the group cache;
//	                  client/mlsgroup implements it on keys/mls
//	client/transfer   encrypted media: resumable upload, checked download
//	client/store      the profile's bbolt store (IndexedDB in the browser)
//	client/webclient  this library as WebAssembly in the browser's Web
//	                  Worker (GOOS=js; homeserver/webui serves it)
//
// A message goes Queue (outbox.go) → outbox.Sender.Flush → sealer.seal
// (roster.Reconcile, the group's Encrypt, stored with the new state) →
// Send on the session → history.
//
// # Order of sending
//
// Within a conversation, messages are sent in the order they were queued;
// conversations do not wait for each other (a stuck or backing-off
// conversation never delays another). A message refused for good (unknown
// user or domain, this device no longer a member, refused by policy) is kept
// in the outbox marked failed, and the messages queued after it in its
// conversation are still sent. RetryOutbox clears the mark: the message is
// then sent under its original id (so a copy the server did get is
// deduplicated) after the ones that went meanwhile, as a chat app's "not
// sent, tap to retry" does; DropOutbox removes it. Flush(until) returns once
// until is accepted or failed; Flush("") once nothing can be sent now (a
// queue that keeps failing retryably is left for a later Flush after a few
// tries, with its attempts and reason on the item).
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
//     after a lost SendOK harmless. When nothing must be waited for (the
//     session is caught up, the roster fresh, the conversation in step and
//     every earlier item of its queue encrypted) the encryption is in the
//     transaction that queues it (sealQueued): one commit per message sent,
//     also for a burst queued while the first is in flight. SendOK moves it to
//     history; that write is put off to the store's next one (Store.Later),
//     since losing it in a crash only sends the same bytes again.
//   - A commit (adding or removing devices) is stored with the group state
//     holding it as pending; it is merged when the hub accepts it and
//     dropped when the hub refuses it as stale.
//   - A delivery's effects (group state, history, inbox for `recv`) and its
//     mailbox sequence are stored in one transaction before the Ack (one
//     per run of deliveries pushed together); a delivery pushed again after
//     a lost Ack is recognised by its sequence. Removing printed messages
//     from the inbox is put off to the next write, or a second without
//     deliveries (a crash prints them again: at least once).
//
// # Trust
//
// Users' identity keys are pinned on first use and kept in the store with
// the newest verified device list; MLS members are accepted only when they
// are on their user's validly signed list (identity.Validator). Approving
// a device checks the link key the server returns against the fingerprint
// in the link code, so the server cannot substitute its own key.
package client
