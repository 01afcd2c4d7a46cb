// Package convstate keeps what this device knows about its conversations
// in the profile store: the conversation records (peers, creator, group or
// 1:1, the direct conversation with each peer), the pending commit of a
// conversation, and its MLS group state, loaded and saved through the
// group cache (States). It is the vocabulary the client's conversation,
// roster and delivery code share.
package convstate
