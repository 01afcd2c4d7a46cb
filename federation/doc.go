// Package federation is the Hearth server-to-server protocol: signed
// transactions of envelopes, server key discovery, durable outbound queues
// per destination and verification of inbound traffic.
package federation
