package admin

import (
	"context"
	"time"
)

// Ops is what the admin socket serves. *homeserver.Server implements it;
// the socket server consumes it. Errors are *wire.Error values whose Kind
// the socket maps to its response.
type Ops interface {
	UserAdd(ctx context.Context, name string, password []byte, admin bool) (UserInfo, error)
	UserList(ctx context.Context) ([]UserInfo, error)
	UserSetDisabled(ctx context.Context, name string, disabled bool) error
	UserDelete(ctx context.Context, name string) error
	UserPasswd(ctx context.Context, name string, password []byte) error
	DeviceList(ctx context.Context, name string) ([]DeviceInfo, error)
	DeviceRevoke(ctx context.Context, name, deviceID string) error
	Status(ctx context.Context) (Status, error)
	// UserSetRole gives (admin true) or takes the admin role.
	UserSetRole(ctx context.Context, name string, admin bool) error
	// AuditList returns the newest limit entries of the audit log, newest first.
	AuditList(ctx context.Context, limit int) ([]AuditEntry, error)
}

// UserInfo describes one account.
type UserInfo struct {
	Name      string `json:"name"`    // local part
	Address   string `json:"address"` // name@domain
	Admin     bool   `json:"admin"`
	Disabled  bool   `json:"disabled"`
	Devices   int    `json:"devices"` // active and pending devices
	CreatedMs int64  `json:"created_ms"`
}

// DeviceInfo describes one device of an account.
type DeviceInfo struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Status     string `json:"status"` // "pending", "active", "revoked"
	CreatedMs  int64  `json:"created_ms"`
	LastSeenMs int64  `json:"last_seen_ms"`
	Online     bool   `json:"online"`
}

// Status is a short health summary of the running server.
type Status struct {
	Domain         string `json:"domain"`
	Version        string `json:"version"`
	StartedMs      int64  `json:"started_ms"`
	Users          int    `json:"users"`
	OnlineSessions int    `json:"online_sessions"`

	// The figures /metrics also has (docs/operations.md, "Monitoring").
	// SessionsByTransport counts open client streams by transport
	// ("webtransport", "websocket"); set by the process that runs the
	// transport.
	SessionsByTransport map[string]int    `json:"sessions_by_transport,omitempty"`
	MessagesAccepted    uint64            `json:"messages_accepted"`  // since start
	MessagesDelivered   uint64            `json:"messages_delivered"` // mailbox entries pushed, since start
	AcksReceived        uint64            `json:"acks_received"`      // Ack frames read from clients, since start
	MailboxBacklog      int64             `json:"mailbox_backlog"`    // entries not yet acknowledged
	FederationQueue     int64             `json:"federation_queue"`   // envelopes waiting for peers
	MediaBytes          int64             `json:"media_bytes"`        // complete media stored
	MediaFiles          int64             `json:"media_files"`
	WriterBatches       uint64            `json:"writer_batches"`    // transactions committed, since start
	WriterRequests      uint64            `json:"writer_requests"`   // write requests they carried
	Refused             map[string]uint64 `json:"refused,omitempty"` // error answers by code, since start
	// SendStages are latency histograms of a message's way through the
	// server, since start, by stage (StageReceiveToCommit, …); `hearth
	// bench` reports an interval's from two readings.
	SendStages map[string]Histogram `json:"send_stages,omitempty"`
	// SignalDatagrams counts typing and presence pushes sent as QUIC or
	// WebTransport datagrams since start; set by the process that runs
	// the transport, with SessionsByTransport.
	SignalDatagrams uint64 `json:"signal_datagrams"`
	// QUICPacketsSent and QUICPacketsReceived count the QUIC packets of
	// every connection since start (client sessions, REST over HTTP/3,
	// federation); set by the process that runs the transport. `hearth
	// bench` figures packets per message from two readings.
	QUICPacketsSent     uint64 `json:"quic_packets_sent"`
	QUICPacketsReceived uint64 `json:"quic_packets_received"`
}

// The stages of Status.SendStages.
const (
	// StageReceiveToCommit: a Send read from the client's stream → its
	// transaction durably committed (validation, the writer's queue,
	// the group commit and its fsync).
	StageReceiveToCommit = "receive_to_commit"
	// StageReceiveToWriter: a Send read → the storage writer runs it in
	// a transaction (validation and the writer's queue: the part of
	// receive_to_commit before its transaction; the rest is the
	// transaction up to its COMMIT and fsync).
	StageReceiveToWriter = "receive_to_writer"
	// StageCommitToAck: committed → the SendOK written to the sender's
	// stream (the session's reply queue, in request order).
	StageCommitToAck = "commit_to_ack"
	// StageCommitToPush: committed → the Delivery written to a
	// recipient's stream, for entries handed to a caught-up session
	// (no database read).
	StageCommitToPush = "commit_to_push"
	// StageReceiveToPushRead: accepted (the entry's time, millisecond
	// precision) → the Delivery written, for entries read back from the
	// mailbox (a session that was behind, a backlog, a reconnect).
	StageReceiveToPushRead = "receive_to_push_read"
	// StageWriterTransaction and StageWriterFsync time the writer's
	// batches (WriterStages): one value per transaction, which carries
	// the writes of many Sends (group commit).
	StageWriterTransaction = "writer_transaction"
	StageWriterFsync       = "writer_fsync"
)

// FederationOps is what the admin socket serves for federation. It is a
// separate interface so that Ops stays as it was; the socket server uses
// it when its Ops value also implements it.
type FederationOps interface {
	FederationPeerAdd(ctx context.Context, domain, address string, caPEM []byte) (PeerInfo, error)
	FederationList(ctx context.Context) (FederationInfo, error)
	FederationPolicy(ctx context.Context, op, value string) error // op: allow, deny, mode
}

// FederationKeyOps rotates the federation signing key.
type FederationKeyOps interface {
	FederationKeyRotate(ctx context.Context, grace time.Duration) (KeyRotation, error)
}

// TokenKeyOps rotates the access-token signing key.
type TokenKeyOps interface {
	TokenKeyRotate(ctx context.Context, grace time.Duration) (KeyRotation, error)
}

// KeyRotation is `hearth admin federation key rotate` and `hearth admin
// token-key rotate`.
type KeyRotation struct {
	Current        string `json:"current"`          // id of the new signing key
	Retired        string `json:"retired"`          // id of the key it replaced
	RetiredUntilMs int64  `json:"retired_until_ms"` // end of the retired key's validity
}

// FederationInfo is `hearth admin federation list`.
type FederationInfo struct {
	Domain string     `json:"domain"`
	KeyID  string     `json:"key_id"`
	Mode   string     `json:"mode"`
	Allow  []string   `json:"allow"`
	Deny   []string   `json:"deny"`
	Peers  []PeerInfo `json:"peers"`
}

// PeerInfo is one federation peer as the sender sees it.
type PeerInfo struct {
	Domain        string `json:"domain"`
	Address       string `json:"address"`
	Pinned        bool   `json:"pinned"`
	QueueDepth    int    `json:"queue_depth"`
	LastContactMs int64  `json:"last_contact_ms"` // 0: never (since start)
	Attempts      int    `json:"failed_attempts"` // consecutive; 0: healthy
	NextAttemptMs int64  `json:"next_attempt_ms"` // 0: not backing off
	LastError     string `json:"last_error,omitempty"`
	Sent          uint64 `json:"sent"`
	Expired       uint64 `json:"expired"`
}
