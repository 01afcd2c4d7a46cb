// Package homeserver is the Hearth server for one domain: its sessions
// and their requests, accounts, devices, authentication, the key
// directory and the admin operations, wired to the parts that live in
// their own packages (docs/decisions/0005):
//
//	homeserver/hub         the conversation hub's rules (Accept, AcceptCommit)
//	homeserver/keydir      the key directory (identity keys, device lists,
//	                       devices, KeyPackages)
//	homeserver/fedlink     federation glue (envelopes, peers, queries, signals)
//	homeserver/delivery    Router, pushers, handoff of committed entries
//	homeserver/mediastore  media files (uploads, ranged reads, janitor)
//
// Imports run one way: homeserver -> fedlink -> hub -> storage (keydir,
// delivery and mediastore sit beside them on storage); fedlink knows the
// session layer only through interfaces it declares, wired in New. Transport adapters (WebTransport, WebSocket, REST, the admin
// socket) turn the Server's methods into network services; the logic here
// never listens on its own: ServeStream serves one client byte stream.
//
// # Session flow (one control stream, frames of homeserver/wire)
//
//	client                         server
//	Login{user,password,...}  -->  LoginOK (device created: ACTIVE+first_device
//	                               when the user has no identity key yet,
//	                               PENDING with link_code otherwise)
//	  or Hello{access_token}  -->  HelloOK
//	  or Register{invite_code, -->  LoginOK as for a first device, after the
//	     user,password,...}        account was created with one use of an
//	                               admin invite (invites.go); else FORBIDDEN
//	Sync{after_seq}           -->  SyncOK{head}, then Delivery pushes (id 0)
//	Ack{up_to_seq}            -->  ok (after the ack is durable)
//	Send{...}                 -->  SendOK (after the durable commit)
//	                          <--  SessionClosed (revoked, disabled, shutdown)
//
// Requests are answered in order, except Send and Ack, which are
// pipelined: they are queued to the storage writer in request order and
// answered when their transaction commits, while further requests are
// read. At most 128 may wait; then reading stops (backpressure).
//
// # Delivery contract
//
// Every accepted Send runs as one function inside the storage writer's
// group transaction (hub.Hub.Accept): dedup record (sender device, message id), log append
// with the conversation's next sequence, roster change for commits, and
// one mailbox row per recipient device (two SQL statements whatever the
// roster size). SendOK follows COMMIT. A retry returns the first SendOK
// with duplicate=true, also after a restart. Sync pushes entries with
// seq > max(after_seq, acked) in order, at most DeliveryWindow
// unacknowledged; new entries wake the session through the Router (a
// callback with LocalRouter: the pusher runs on a goroutine only while
// there is something to push, and an idle session holds only its reader
// goroutine; replies and typing/presence pushes likewise run on demand,
// delivery.Queue). After COMMIT (never before) a Send hands its new
// entries to the recipients' pushers through the router
// (delivery.EntryNotifier): a pusher exactly caught up pushes them without
// reading the mailbox; a pusher that is behind (gap, full window, more
// than 64 entries or 1 MiB handed, a new Sync) reads it
// (homeserver/delivery). Acks
// are cumulative and persisted before they are answered; the server's ack
// position drives retention and makes sure an acknowledged entry is never
// delivered again.
//
// # Access control
//
// Before Hello/Login only Hello, Login and Refresh are served
// (CODE_UNAUTHENTICATED otherwise). A pending device may only
// FetchApproval, PublishKeyPackages, ListDevices, Ping, FetchDeviceList,
// ApproveDevice for itself (self-approval with the recovery key,
// docs/decisions/0002) and RevokeDevice for itself, which deletes it (a
// login that gave up waiting for approval). The device's Login.signature_key is kept and shown
// in PendingDeviceInfo; an approval must list exactly that key. The server
// stores device lists only as signed by the user's identity key
// (keys/identity) and never adds a device to one.
//
// # Conversations
//
// The conversation id is LOCAL@thisdomain (identity.ConversationID); this
// server is its hub (homeserver/hub). Exactly one commit per epoch is
// accepted, in hub.Hub.AcceptCommit (CODE_STALE_EPOCH otherwise, retryable);
// application messages are accepted from the current epoch back to
// EpochWindow epochs, proposals only in the current one. A commit reaches
// the roster as it was (removed devices get the commit that removes them,
// nothing after) and its welcome reaches the devices it adds, together
// with the GroupInfo the commit carried (Delivery.group_info: Welcomes omit
// the ratchet tree, docs/decisions/0004). Commits are bounded by
// MaxCommitBytes, application messages by MaxMessageBytes. A device
// that is not a member may send one kind of commit: an external commit
// adding only itself, when its user already has a device in the group
// (GetConversation gives such a device the GroupInfo).
//
// FetchDeviceLists answers up to 256 users' signed device lists at once
// (devicelists.go, keydir), each missing user reported with its own code.
//
// # Federation (docs/federation.md; homeserver/fedlink)
//
// With a server key (Deps.ServerKey) the server federates. A Send to a
// conversation hubbed elsewhere is stored as a pending submission and a
// SUBMIT queued for the hub in one transaction; the device is answered
// with the hub's SUBMIT_RESULT (or CODE_UNAVAILABLE after SendWait, and a
// retry with the same message id waits for the same submission). As a
// hub, every accepted message queues one DELIVER per other server with
// members, in the accepting transaction; remote devices are roster rows
// without a device id. A follower keeps a copy of each remote
// conversation (log at the hub's sequence, its local devices on the
// roster), so mailboxes and delivery work as for local ones. Remote
// users' device lists and KeyPackages are fetched by signed queries.
// Without a server key, remote devices and conversations answer
// CODE_UNAVAILABLE. Private keys live in 0600 files of Config.KeyDir,
// never in the database: Deps.ServerKey is the federation key until
// KeyDir/federation.key exists (written at the first start); rotations
// replace that file, and the public halves with their validity live in
// fed_server_keys (fedlink/keys.go). A peer's unknown key id, or a key
// whose published window ended, makes the server re-fetch that peer's key
// document (RefreshServerKeys, rate-limited). Deps.SigningKey signs access
// tokens; TokenKeyRotate replaces it (KeyDir/signing.key, tokenkeys.go). A DELIVER that expires
// becomes a delivery-failed mailbox notice for the device that sent the
// message, locally or through its server (fedlink/failed.go).
//
// # Link codes
//
// LoginOK.link_code is the server's lookup token (16 of A-Z 2-7). The
// pending device shows TOKEN-FINGERPRINT (identity.FormatLinkCode); the
// approving device sends PendingDevice with the token (anything after "-"
// is ignored by the server) and checks the fingerprint itself.
//
// # Locks
//
// registry.mu (live streams and sessions), session.pushMu,
// MemoryPresence.mu, limiters.mu, delivery.Pusher.mu, delivery.Queue.mu
// and FrameWriter's lock are leaves: no other lock is taken while one is
// held (closeSessions collects its victims under registry.mu and ends them
// after releasing it). The one order: delivery.LocalRouter.mu before
// Pusher.mu (Notify calls the pushers' kick under it; a pusher
// unsubscribes only after releasing its own lock). Server.presMu, which
// orders this server's users' presence changes (presence_local.go), is
// taken with no other lock held and before registry.mu, MemoryPresence.mu
// and the sessions' delivery.Queue.mu.
//
// # Presence
//
// docs/presence.md: passive sessions (Hello.passive) leave the user's
// presence alone; GetPresence and PresenceSettings (presence_query.go)
// answer presence and last seen under each user's last-seen setting; the
// presence loop (presence_loop.go) repeats local states to other servers
// and lapses remote ones that are no longer repeated.
package homeserver
