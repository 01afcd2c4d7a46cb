package homeserver

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"hearth/homeserver/delivery"
	"hearth/homeserver/fedlink"
	"hearth/homeserver/hub"
	"hearth/homeserver/keydir"
	"hearth/homeserver/mediastore"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/storage"
)

// Server is the homeserver logic for one domain. Transports hand it byte
// streams (ServeStream); it never listens on its own.
type Server struct {
	cfg      Config
	db       *storage.DB
	log      *slog.Logger
	now      func() time.Time
	after    func(time.Duration) <-chan time.Time
	rand     *lockedReader
	router   Router
	dlv      *delivery.Engine // pushes mailboxes to sessions (homeserver/delivery)
	presence Presence
	presMu   sync.Mutex // orders this server's users' presence changes (presence_local.go)
	limits   *limiters
	auth     *authority // passwords, tokens, devices' credentials (auth.go)
	// Admin holds the admin operations (admin.go); embedded, so that the
	// Server offers them (admin.Ops) to the admin socket and to tests.
	*Admin
	hub     *hub.Hub          // the conversation hub's rules (homeserver/hub)
	fed     *fedlink.Link     // nil: federation off
	dir     *keydir.Directory // the key directory (homeserver/keydir)
	mediaSt *mediastore.Store // media files and uploads (homeserver/mediastore)
	// datagramPushes counts signals sent as datagrams (datagram.go).
	datagramPushes atomic.Uint64
	// sendRate is the per-device Send limit: cfg.RateLimit until a Reload.
	sendRate atomic.Pointer[RateLimit]

	reg *registry // live streams and sessions (registry.go)

	stop chan struct{}
	wg   sync.WaitGroup // background loops
}

// New checks cfg and deps and starts the background loops.
func New(cfg Config, deps Deps) (*Server, error) {
	const op = "homeserver.New"
	cfg = cfg.withDefaults()
	if err := identity.CheckDomain(cfg.Domain); err != nil {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "invalid domain %q", cfg.Domain)
	}
	if deps.DB == nil {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "no database")
	}
	if len(deps.SigningKey) != ed25519.PrivateKeySize {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "signing key must be an Ed25519 private key")
	}
	if cfg.MaxFrame < 4096 || cfg.MaxMessageBytes > cfg.MaxFrame-1024 {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "MaxMessageBytes %d does not fit in MaxFrame %d", cfg.MaxMessageBytes, cfg.MaxFrame)
	}
	if cfg.MaxCommitBytes > cfg.MaxFrame-1024 || cfg.MaxCommitBytes < cfg.MaxMessageBytes {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "MaxCommitBytes %d must be between MaxMessageBytes %d and what MaxFrame %d holds",
			cfg.MaxCommitBytes, cfg.MaxMessageBytes, cfg.MaxFrame)
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.After == nil {
		deps.After = time.After
	}
	if deps.Rand == nil {
		deps.Rand = rand.Reader
	}
	if deps.Router == nil {
		deps.Router = delivery.NewLocalRouter()
	}
	if deps.Presence == nil {
		deps.Presence = NewMemoryPresence()
	}
	s := &Server{
		cfg: cfg, db: deps.DB,
		log: deps.Log, now: deps.Now, after: deps.After, rand: &lockedReader{r: deps.Rand},
		router: deps.Router, presence: deps.Presence,
		limits: newLimiters(),
		reg:    newRegistry(),
		stop:   make(chan struct{}),
	}
	s.sendRate.Store(&s.cfg.RateLimit)
	ctr := &counters{writer: deps.Writer}
	s.dlv = delivery.New(delivery.Config{Window: cfg.DeliveryWindow, Now: deps.Now, PushLatency: ctr.pushLatency}, deps.DB, deps.Router, deps.Log)
	s.warnSmallCommitLimit()
	var err error
	if s.auth, err = newAuthority(cfg, deps.DB, deps.SigningKey, deps.Log, deps.Now, s.rand, s.limits, s.reg); err != nil {
		return nil, wire.E(op, err)
	}
	if s.mediaSt, err = mediastore.Open(cfg.Media, mediastore.Deps{DB: deps.DB, Log: deps.Log, Now: deps.Now, Rand: s.rand}); err != nil {
		return nil, err
	}
	if err := s.wireHubAndFederation(deps.ServerKey); err != nil {
		return nil, err
	}
	s.Admin = &Admin{cfg: cfg, db: deps.DB, log: deps.Log, now: deps.Now, rand: s.rand, started: deps.Now(),
		auth: s.auth, reg: s.reg, dir: s.dir, fed: s.fed, ctr: ctr, refused: newLimiters()}
	if cfg.RetentionInterval > 0 {
		s.wg.Add(1)
		go s.retentionLoop()
	}
	if cfg.Presence.Refresh > 0 {
		s.wg.Add(1)
		go s.presenceLoop()
	}
	if cfg.Media.JanitorEvery > 0 {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.mediaSt.JanitorLoop(s.stop) }()
	}
	return s, nil
}

// Close ends every live session (SessionClosed with CODE_UNAVAILABLE) and
// stops the background loops. It does not close the database.
func (s *Server) Close() error {
	if !s.reg.close() {
		return nil
	}
	close(s.stop)
	s.reg.closeSessions(func(*session) bool { return true }, wire.Code_CODE_UNAVAILABLE, "server shutting down")
	s.wg.Wait()
	if s.fed != nil {
		s.fed.Close()
	}
	// Streams end once their reader sees the close; their pending commits
	// are answered (or fail) first. Do not wait forever on a stuck one.
	done := make(chan struct{})
	go func() { s.reg.streams.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		s.log.Warn("close: streams still ending after 5s")
	}
	return nil
}

func (s *Server) nowMs() int64 { return s.now().UnixMilli() }

// user returns the address of local user name.
func (s *Server) user(name string) identity.UserAddress {
	return identity.UserAddress{Local: name, Domain: s.cfg.Domain}
}

// userAddress returns name@domain.
func (s *Server) userAddress(name string) string { return name + "@" + s.cfg.Domain }

// deviceAddress returns name@domain/DEVICE.
func (s *Server) deviceAddress(name, deviceID string) string {
	return name + "@" + s.cfg.Domain + "/" + deviceID
}

// internal wraps an unexpected error (storage, crypto) as CODE_INTERNAL.
func internal(op string, err error) error { return wire.Internal(op, err) }

// lockedReader serializes reads from a randomness source that may not be
// safe for concurrent use.
type lockedReader struct {
	mu sync.Mutex
	r  interface{ Read([]byte) (int, error) }
}

func (l *lockedReader) Read(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(b)
}

// retentionLoop deletes acknowledged mailbox entries older than Retention,
// log entries nobody references any more and old dedup records.
func (s *Server) retentionLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.RetentionInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if _, err := s.RunRetention(context.Background()); err != nil {
				s.log.Error("retention", "err", err)
			}
		}
	}
}

// RunRetention runs one retention pass (the loop calls it; tests call it
// directly with their clock). It returns how many rows it deleted.
func (s *Server) RunRetention(ctx context.Context) (int64, error) {
	const batch = 2000
	now := s.now()
	cutoff := now.Add(-s.cfg.Retention).UnixMilli()
	dedupCutoff := now.Add(-max(s.cfg.Retention, 24*time.Hour)).UnixMilli()
	var total int64
	// Each step deletes up to batch rows per transaction and says whether
	// more are left.
	upTo := func(f func(*storage.Tx) (int64, error)) func(*storage.Tx) (int64, bool, error) {
		return func(tx *storage.Tx) (int64, bool, error) { n, err := f(tx); return n, n == batch, err }
	}
	var logNext int64 // where the log's pass continues
	steps := []func(*storage.Tx) (int64, bool, error){
		upTo(func(tx *storage.Tx) (int64, error) { return tx.DeleteAcked(cutoff, batch) }),
		func(tx *storage.Tx) (int64, bool, error) {
			n, next, err := tx.DeleteUnreferencedLog(cutoff, logNext, batch)
			logNext = next
			return n, next != 0, err
		},
		upTo(func(tx *storage.Tx) (int64, error) { return tx.DeleteSendRecords(now.UnixMilli(), dedupCutoff, batch) }),
		upTo(func(tx *storage.Tx) (int64, error) { return tx.DeleteExpiredRefreshTokens(now.UnixMilli()) }),
		// A pending device whose tokens are all gone cannot come back; a
		// day's grace covers a login that is still showing its link code.
		upTo(func(tx *storage.Tx) (int64, error) {
			return tx.DeleteAbandonedPendingDevices(now.Add(-24*time.Hour).UnixMilli(), batch)
		}),
		// Inbound federation dedup outlives any sender's retries: 14 days
		// (twice the default expiry) or the retention, whichever is longer.
		upTo(func(tx *storage.Tx) (int64, error) {
			return tx.DeleteFederationRecords(now.Add(-max(s.cfg.Retention, 14*24*time.Hour)).UnixMilli(), batch)
		}),
	}
	for _, step := range steps {
		for {
			var n int64
			var more bool
			err := s.db.Write(ctx, func(tx *storage.Tx) (err error) { n, more, err = step(tx); return err })
			if err != nil {
				return total, fmt.Errorf("homeserver.RunRetention: %w", err)
			}
			total += n
			if !more {
				break
			}
			select {
			case <-s.stop:
				return total, nil
			default:
			}
		}
	}
	return total, nil
}
