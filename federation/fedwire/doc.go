// Package fedwire holds the Hearth server-to-server protocol messages
// (federation.proto, generated code committed). docs/federation.md is the
// specification; package federation signs, verifies and queues them.
package fedwire
