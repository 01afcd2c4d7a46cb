// Package client is the Go client library for Hearth: session and
// reconnect, login and device linking, MLS group state, the local bbolt
// store (client/store), the outbox of unsent messages and received history.
//
// # Layers
//
//	Client        one device's profile: Login, WaitApproval, Approve, Devices,
//	              Revoke, Queue + Flush (send), Receive, History
//	Session       one authenticated control stream kept up: reconnect with
//	              backoff and jitter, Hello (Refresh when the access token
//	              expired), Sync after the last processed mailbox sequence,
//	              deliveries handled in order and acknowledged cumulatively
//	conn          request/response multiplexing by frame id over one stream
//	GroupEngine   the MLS seam (mls.go): the keys/mls group state machine
//	              plugs in here; without it messaging fails with ErrNoE2EE
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
