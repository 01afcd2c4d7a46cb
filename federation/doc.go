// Package federation is the Hearth server-to-server protocol
// (docs/federation.md): signed transactions of envelopes and signed
// queries, server key documents, verification of inbound traffic (Verifier,
// CheckEnvelope, Policy, RateLimiter), the HTTP/3 endpoints (Handler, which
// hands verified traffic to an Inbound), the HTTP/3 Client, and the
// per-destination sender loops (Outbound) that drain a durable Queue with
// one transaction in flight, Backoff after failures and expiry, and the
// bounded, cached discovery of unpinned servers' key documents
// (Discovery: domain names only, special-use names answered without a
// lookup, no redirects, a negative cache with backoff, global bounds).
//
// The package holds no storage and no homeserver logic: the homeserver
// implements Inbound, Queue, PeerSource and KeyResolver.
//
// Message flow (hub model):
//
//	follower                          hub
//	SUBMIT (device's Send)     -->    applies like a local Send
//	                           <--    SUBMIT_RESULT (verdict, conversation seq)
//	                           <--    DELIVER (to every server with members)
//	DEVICE_LIST (list changes) <-->   to every server sharing a conversation
package federation
