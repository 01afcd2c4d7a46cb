// Package outbox sends the messages this device queued, in order, and
// moves each accepted one to history.
//
// An item is sealed (encrypted, its request stored with the advanced
// group state) once by the client's Seal; every retry sends those same
// bytes under the same message id, so the server's deduplication makes a
// retry after a lost SendOK harmless. A Sender keeps at most one item per
// conversation in flight, so a conversation's order is the outbox order
// whatever the server refuses; items of different conversations go
// together, pipelined on one connection. A refusal that a retry cannot
// fix marks the item failed (store.OutboxItem.Failed), and the Sender goes
// on with the others.
//
// The Sender knows nothing of MLS or conversations: the client gives it
// Seal, Resolve (which conversation an item goes to) and what to do once
// a control item was accepted.
package outbox
