// Package outbox sends the messages this device queued, in order, and
// moves each accepted one to history.
//
// An item is sealed (encrypted, its request stored with the advanced
// group state) once by the client's Seal; every retry sends those same
// bytes under the same message id, so the server's deduplication makes a
// retry after a lost SendOK harmless.
//
// The outbox is one queue per conversation (store.OutboxHeads reads the
// head of each without reading the rest). A Sender keeps at most one item
// per queue in flight, so a conversation's order is the outbox order
// whatever the server refuses; the heads of different queues are sealed
// and sent at once, each on its own goroutine, pipelined on one
// connection, so that a slow seal or a hub that does not answer holds
// back only its own queue. A retryable failure backs off that queue alone
// and is recorded on the item (Attempts, LastError); a refusal that a
// retry cannot fix marks the item failed (store.OutboxItem.Failed) and the
// queue goes on with its next item. A failed item is sent again only when
// retried (Sender.Retry), then after the items queued behind it.
//
// The Sender knows nothing of MLS or conversations: the client gives it
// Seal, Resolve (which conversation an item goes to) and what to do once
// a control item was accepted.
package outbox
