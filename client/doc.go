// Package client is the Go client library for Hearth: session and
// reconnect, login and device linking, MLS group state, the local bbolt
// store, the outbox of unsent messages and received history.
package client
