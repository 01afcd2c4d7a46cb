// Package e2ee is the client's MLS seam: the Engine and Group interfaces
// the conversation layer encrypts with (client/mlsgroup implements them on
// the RFC 9420 group state machine of keys/mls), and Cache, which keeps
// parsed group states between messages so that a message does not parse
// its conversation's state again.
package e2ee
