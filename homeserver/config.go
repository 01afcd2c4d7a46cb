package homeserver

import (
	"crypto/ed25519"
	"io"
	"log/slog"
	"runtime"
	"time"

	"hearth/homeserver/admin"
	"hearth/homeserver/mediastore"
	"hearth/keys/serverkey"
	"hearth/storage"
)

// Config is the homeserver's own configuration. Zero values mean the
// defaults in the comments.
type Config struct {
	Domain   string // required, e.g. "localhost", "a.example"
	MaxFrame int    // largest frame either way; default wire.DefaultMaxFrame (8 MiB)
	// AuthTimeout closes a stream that has not authenticated (Hello or
	// Login answered OK) this long after it opened. Default 10s; < 0: never.
	AuthTimeout     time.Duration
	AccessTokenTTL  time.Duration // default 15m
	RefreshTokenTTL time.Duration // default 30 days (sliding: each rotation restarts it)
	// Retention is how long mailbox entries are kept after the device
	// acknowledged them (measured from when they were queued); unacked
	// entries are kept until acked. Default 7 days. Dedup records live as
	// long, but at least 24h, so a retry within a day always dedups.
	Retention         time.Duration
	RetentionInterval time.Duration // how often the retention loop runs; default 1m; < 0: no loop
	MaxMessageBytes   int           // payload of one application message or proposal; default 256 KiB (less if MaxFrame is small)
	// MaxCommitBytes bounds payload + welcome + group_info of one commit
	// (and the GroupInfo of CreateConversation). Default 6 MiB (less if
	// MaxFrame is small), never below MaxMessageBytes: a 1,024-device
	// group on the post-quantum suite has a ratchet tree of 1.4-2.7 MB
	// (docs/decisions/0004-large-groups.md).
	MaxCommitBytes int
	RateLimit      RateLimit // per-device Send limit
	MaxMembers     int       // devices per conversation; default 1024
	EpochWindow    uint64    // application messages accepted this many epochs back; default 2
	// UnverifiedCommits lets conversations without a public MLS state
	// (created without the creator's GroupInfo) accept commits on their
	// declared roster change, unverified (hub.Config.UnverifiedCommits).
	// Only for tests whose payloads are not MLS; off, such conversations
	// accept no commit.
	UnverifiedCommits bool
	DeliveryWindow    int // unacknowledged deliveries in flight per session; default 256
	MaxKeyPackages    int // stored single-use KeyPackages per device; default 500
	MaxDevices        int // pending + active devices per user; default 100
	Password          PasswordParams
	Version           string // reported by Status; default "dev"
	Federation        FederationConfig
	Media             MediaConfig
	Presence          PresenceConfig
	// KeyDir is the folder of the server's private keys, each a 0600
	// file: signing.key (access tokens) and federation.key (federation;
	// FederationConfig.KeyDir defaults to it). Key rotation replaces them;
	// empty: the keys given in Deps are used and rotation is refused.
	KeyDir string
}

// PresenceConfig times presence (docs/presence.md, presence_loop.go).
type PresenceConfig struct {
	// Refresh is how often the server repeats its users' ONLINE and AWAY
	// states to the servers sharing a conversation with them and turns
	// lapsed states OFFLINE. A remote state lapses 3 × its server's
	// Refresh after it last arrived. Default 60s; < 0: no loop (tests).
	Refresh time.Duration
	// Lease is how long an ONLINE or AWAY state set while no active
	// session holds the user (a one-shot `chat presence online`) lasts.
	// Default 5m.
	Lease time.Duration
}

// MediaConfig bounds media uploads (homeserver/mediastore).
type MediaConfig = mediastore.Config

// RateLimit is a token bucket: PerSecond sustained, Burst at once.
type RateLimit struct {
	PerSecond float64 // default 50
	Burst     int     // default 100
}

// PasswordParams are argon2id parameters for new hashes. Stored hashes
// keep the parameters they were made with.
type PasswordParams struct {
	Time      uint32 // default 2
	MemoryKiB uint32 // default 19456 (19 MiB, the OWASP minimum for argon2id)
	Threads   uint8  // default 1
	// MaxConcurrent bounds how many hashes (logins, registrations,
	// password changes) are computed at once; the others wait. Each holds
	// MemoryKiB, so a login storm costs at most MaxConcurrent × MemoryKiB.
	// Default GOMAXPROCS: more would not finish sooner.
	MaxConcurrent int
}

// Deps are the homeserver's collaborators, wired by cmd/hearth.
type Deps struct {
	DB         *storage.DB
	SigningKey ed25519.PrivateKey // signs access tokens
	Log        *slog.Logger       // default: discard
	Now        func() time.Time   // default time.Now
	// After is the timer of the auth watch (the clock of Now); default
	// time.After.
	After    func(time.Duration) <-chan time.Time
	Rand     io.Reader // default crypto/rand.Reader; must be safe for concurrent use
	Router   Router    // default: in-process
	Presence Presence  // default: in-memory
	// ServerKey signs federation transactions and queries; nil: no federation.
	ServerKey *serverkey.Key
	// Writer, when set, is the storage writer's batch timing (the DB's
	// CommitObserver), reported with the send stages in the status.
	Writer *admin.WriterStages
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.AccessTokenTTL, 15*time.Minute)
	def(&c.RefreshTokenTTL, 30*24*time.Hour)
	def(&c.Retention, 7*24*time.Hour)
	def(&c.RetentionInterval, time.Minute)
	def(&c.AuthTimeout, 10*time.Second)
	def(&c.Presence.Refresh, time.Minute)
	def(&c.Presence.Lease, 5*time.Minute)
	defInt := func(d *int, v int) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt(&c.MaxFrame, 8<<20)                             // wire.DefaultMaxFrame
	defInt(&c.MaxMessageBytes, min(256<<10, c.MaxFrame/2)) // room for the envelope
	defInt(&c.MaxCommitBytes, max(c.MaxMessageBytes, min(6<<20, c.MaxFrame-64<<10)))
	defInt(&c.MaxMembers, 1024)
	defInt(&c.DeliveryWindow, 256)
	defInt(&c.MaxKeyPackages, 500)
	defInt(&c.MaxDevices, 100)
	c.RateLimit = c.RateLimit.withDefaults()
	if c.EpochWindow == 0 {
		c.EpochWindow = 2
	}
	if c.Password.Time == 0 {
		c.Password.Time = 2
	}
	if c.Password.MemoryKiB == 0 {
		c.Password.MemoryKiB = 19456
	}
	if c.Password.Threads == 0 {
		c.Password.Threads = 1
	}
	defInt(&c.Password.MaxConcurrent, runtime.GOMAXPROCS(0))
	if c.Version == "" {
		c.Version = "dev"
	}
	c.Media = c.Media.WithDefaults(c.MaxFrame)
	return c
}

// commitBytesPerDevice is what the largest commit of a group grows by per
// member device on the default suite 0xF001: a commit with an update path
// (≈ 1.2 KB per device) beside the GroupInfo that carries the ratchet tree
// (≈ 1.4 KB per device), measured at 1,024 devices by keys/mls
// BenchmarkCommitSizes1024 (docs/decisions/0004-large-groups.md).
const commitBytesPerDevice = 2600

// warnSmallCommitLimit says at start-up when the commit limit cannot carry
// the commits of a group of MaxMembers devices on the default suite: data
// folders initialized before decision 0004 keep max_frame_bytes = 1 MiB,
// which caps commits at about 960 KiB (≈ 370 devices).
func (s *Server) warnSmallCommitLimit() {
	fits := s.cfg.MaxCommitBytes / commitBytesPerDevice
	if fits >= s.cfg.MaxMembers {
		return
	}
	s.log.Warn("the commit size limit is too small for groups of max_members devices on the default suite",
		"max_commit_bytes", s.cfg.MaxCommitBytes, "max_frame_bytes", s.cfg.MaxFrame,
		"max_members", s.cfg.MaxMembers, "devices_that_fit", fits,
		"fix", "raise limits.max_frame_bytes to 8388608 and limits.max_commit_bytes to 6291456 (the defaults of new configs) and restart")
}
