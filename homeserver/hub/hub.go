package hub

import (
	"log/slog"

	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/storage"
)

// Config is what the hub's rules depend on.
type Config struct {
	Domain          string // this server's domain: conversations LOCAL@Domain are hubbed here
	EpochWindow     uint64 // application messages are accepted this many epochs back
	MaxMembers      int    // devices in one conversation
	MaxMessageBytes int    // application messages and proposals
	MaxCommitBytes  int    // commits, with their welcome and GroupInfo
	// Federated reports whether devices and conversations of other domains
	// may take part; without it they are refused with CODE_UNAVAILABLE.
	Federated bool
	// Allowed reports whether the federation policy allows a domain; nil
	// allows every domain.
	Allowed func(domain string) bool
	// FetchLists, if set, starts fetching remote users' signed device
	// lists in the background (never in the writer's transaction): a
	// commit that needs a list this server does not hold is refused with
	// CODE_UNAVAILABLE, and its retry finds the list.
	FetchLists func(users []string)
	// UnverifiedCommits lets a conversation without a public MLS state
	// (created without the creator's GroupInfo, or before the hub kept
	// one) accept commits on their declared add_devices/remove_devices,
	// as before the hub verified commits. Off, such a conversation
	// accepts no commit. Only for tests whose payloads are not MLS.
	UnverifiedCommits bool
	Log               *slog.Logger
}

// Hub applies the hub's rules. It holds no state of its own: everything
// it reads and writes is in the transaction it is given.
type Hub struct {
	cfg Config
	log *slog.Logger
}

// New returns a Hub for cfg.
func New(cfg Config) *Hub {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Hub{cfg: cfg, log: log}
}

// Domain is the domain whose conversations this hub orders.
func (h *Hub) Domain() string { return h.cfg.Domain }

// Input is a validated Send (ValidateSend) with its sender.
type Input struct {
	Send     *wire.Send
	Sender   identity.DeviceAddress // parsed at the edge
	DeviceID string                 // the sender's device id when it is local, else ""
	NowMs    int64
	// Fetched names the remote users whose device lists were fetched for
	// this Send just before it (ListsToFetch): a device missing from such
	// a list is refused for good, not as CODE_UNAVAILABLE.
	Fetched map[string]bool
}

// Result is what one accepted (or deduplicated) Send produced.
type Result struct {
	Rec *storage.SendRecord
	Dup bool // a retry: Rec is the first result, nothing else is set
	// Heads are the new mailbox heads; from WelcomeFrom on they are the
	// welcome's entries for added devices.
	Heads       []storage.Head
	WelcomeFrom int
	Log         *storage.LogEntry     // the logged message
	Conv        *storage.Conversation // the conversation as it was
	// Before is the roster as it was (Config.Federated only): the other
	// servers a message goes to are read from it. For a commit it is the
	// whole roster; for any other message the members without a device
	// here (on other servers), addresses only.
	Before []storage.Member
}

// Frame is the SendOK answering the Send.
func (r *Result) Frame() *wire.ServerFrame {
	return &wire.ServerFrame{Body: &wire.ServerFrame_SendOk{SendOk: &wire.SendOK{
		MessageId: r.Rec.MessageID, ConversationSeq: r.Rec.ConvSeq, Epoch: r.Rec.Epoch,
		ServerTimeMs: r.Rec.CreatedMs, Duplicate: r.Dup,
	}}}
}
