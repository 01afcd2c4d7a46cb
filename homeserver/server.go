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

	"hearth/homeserver/admin"
	"hearth/homeserver/delivery"
	"hearth/homeserver/fedlink"
	"hearth/homeserver/hub"
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
	key      ed25519.PrivateKey
	pub      ed25519.PublicKey
	log      *slog.Logger
	now      func() time.Time
	after    func(time.Duration) <-chan time.Time
	rand     *lockedReader
	router   Router
	dlv      *delivery.Engine // pushes mailboxes to sessions (homeserver/delivery)
	presence Presence
	limits   *limiters
	hashes   *hashGate // bounds concurrent argon2id runs (memory; password.go)
	dummy    string    // hash verified for unknown users (timing)
	started  time.Time
	hub      *hub.Hub          // the conversation hub's rules (homeserver/hub)
	fed      *fedlink.Link     // nil: federation off
	lists    *listCache        // local users' signed device lists (listcache.go)
	mediaSt  *mediastore.Store // media files and uploads (homeserver/mediastore)
	// datagramPushes counts signals sent as datagrams (datagram.go).
	datagramPushes atomic.Uint64

	mu       sync.Mutex
	closed   bool
	live     map[*session]struct{} // every live stream, authenticated or not
	sessions map[*session]struct{} // authenticated ones
	byDevice map[string]map[*session]struct{}
	byUser   map[int64]map[*session]struct{} // by user id

	stop    chan struct{}
	wg      sync.WaitGroup // background loops
	streams sync.WaitGroup // live ServeStream calls
}

var _ admin.Ops = (*Server)(nil)

// New checks cfg and deps and starts the background loops.
func New(cfg Config, deps Deps) (*Server, error) {
	const op = "homeserver.New"
	cfg = cfg.withDefaults()
	if _, err := identity.ParseUser("x@" + cfg.Domain); err != nil {
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
		cfg: cfg, db: deps.DB, key: deps.SigningKey, pub: deps.SigningKey.Public().(ed25519.PublicKey),
		log: deps.Log, now: deps.Now, after: deps.After, rand: &lockedReader{r: deps.Rand},
		router: deps.Router, presence: deps.Presence,
		limits:   newLimiters(),
		lists:    newListCache(),
		hashes:   newHashGate(cfg.Password.MaxConcurrent),
		started:  deps.Now(),
		live:     map[*session]struct{}{},
		sessions: map[*session]struct{}{},
		byDevice: map[string]map[*session]struct{}{},
		byUser:   map[int64]map[*session]struct{}{},
		stop:     make(chan struct{}),
	}
	s.dlv = delivery.New(delivery.Config{Window: cfg.DeliveryWindow}, deps.DB, deps.Router, deps.Log)
	s.warnSmallCommitLimit()
	dummy, err := s.hashPassword([]byte("not a password of anybody"))
	if err != nil {
		return nil, wire.E(op, err)
	}
	s.dummy = dummy
	if s.mediaSt, err = mediastore.Open(cfg.Media, mediastore.Deps{DB: deps.DB, Log: deps.Log, Now: deps.Now, Rand: s.rand}); err != nil {
		return nil, err
	}
	if err := s.wireHubAndFederation(deps.ServerKey); err != nil {
		return nil, err
	}
	if cfg.RetentionInterval > 0 {
		s.wg.Add(1)
		go s.retentionLoop()
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
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stop)
	s.mu.Unlock()
	s.closeSessions(func(*session) bool { return true }, wire.Code_CODE_UNAVAILABLE, "server shutting down")
	s.wg.Wait()
	if s.fed != nil {
		s.fed.Close()
	}
	// Streams end once their reader sees the close; their pending commits
	// are answered (or fail) first. Do not wait forever on a stuck one.
	done := make(chan struct{})
	go func() { s.streams.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		s.log.Warn("close: streams still ending after 5s")
	}
	return nil
}

// addStream records a new stream; false if the server is closed.
func (s *Server) addStream(ss *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.live[ss] = struct{}{}
	s.streams.Add(1)
	return true
}

func (s *Server) removeStream(ss *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.live[ss]; ok {
		delete(s.live, ss)
		s.streams.Done()
	}
}

// register adds an authenticated session to the registry.
func (s *Server) register(ss *session, d *storage.Device) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return wire.Errorf("homeserver.register", wire.Code_CODE_UNAVAILABLE, "server shutting down")
	}
	ss.deviceID, ss.userName, ss.userID = d.ID, d.UserName, d.UserID
	s.sessions[ss] = struct{}{}
	if s.byDevice[ss.deviceID] == nil {
		s.byDevice[ss.deviceID] = map[*session]struct{}{}
	}
	s.byDevice[ss.deviceID][ss] = struct{}{}
	if s.byUser[ss.userID] == nil {
		s.byUser[ss.userID] = map[*session]struct{}{}
	}
	s.byUser[ss.userID][ss] = struct{}{}
	return nil
}

// unregister removes a session; it reports whether the user has no other
// live session left.
func (s *Server) unregister(ss *session) (lastOfUser bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sessions[ss]; !ok {
		return false
	}
	delete(s.sessions, ss)
	delete(s.byDevice[ss.deviceID], ss)
	if len(s.byDevice[ss.deviceID]) == 0 {
		delete(s.byDevice, ss.deviceID)
	}
	delete(s.byUser[ss.userID], ss)
	if len(s.byUser[ss.userID]) == 0 {
		delete(s.byUser, ss.userID)
		return true
	}
	return false
}

// sessionsOfDevices returns the live sessions of the given devices.
func (s *Server) sessionsOfDevices(ids []string) []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*session
	for _, id := range ids {
		for ss := range s.byDevice[id] {
			out = append(out, ss)
		}
	}
	return out
}

// sessionsOfUsers returns the live sessions of the given users.
func (s *Server) sessionsOfUsers(ids []int64) []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*session
	for _, n := range ids {
		for ss := range s.byUser[n] {
			out = append(out, ss)
		}
	}
	return out
}

// closeSessions ends every live session matching f: a SessionClosed push,
// then the stream is closed.
func (s *Server) closeSessions(f func(*session) bool, code wire.Code, msg string) {
	s.mu.Lock()
	var victims []*session
	for ss := range s.live {
		if f(ss) {
			victims = append(victims, ss)
		}
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, ss := range victims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ss.end(code, msg)
		}()
	}
	wg.Wait()
}

func (s *Server) closeDevice(deviceID string, code wire.Code, msg string) {
	s.closeSessions(func(ss *session) bool { return ss.deviceID == deviceID }, code, msg)
}

func (s *Server) closeUser(userID int64, code wire.Code, msg string) {
	s.closeSessions(func(ss *session) bool { return ss.userID == userID }, code, msg)
}

func (s *Server) nowMs() int64 { return s.now().UnixMilli() }

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
	steps := []func(*storage.Tx) (int64, error){
		func(tx *storage.Tx) (int64, error) { return tx.DeleteAcked(cutoff, batch) },
		func(tx *storage.Tx) (int64, error) { return tx.DeleteUnreferencedLog(cutoff, batch) },
		func(tx *storage.Tx) (int64, error) { return tx.DeleteSendRecords(dedupCutoff, batch) },
		func(tx *storage.Tx) (int64, error) { return tx.DeleteExpiredRefreshTokens(now.UnixMilli()) },
		// Inbound federation dedup outlives any sender's retries: 14 days
		// (twice the default expiry) or the retention, whichever is longer.
		func(tx *storage.Tx) (int64, error) {
			return tx.DeleteFederationRecords(now.Add(-max(s.cfg.Retention, 14*24*time.Hour)).UnixMilli(), batch)
		},
	}
	for _, step := range steps {
		for {
			var n int64
			err := s.db.Write(ctx, func(tx *storage.Tx) (err error) { n, err = step(tx); return err })
			if err != nil {
				return total, fmt.Errorf("homeserver.RunRetention: %w", err)
			}
			total += n
			if n < batch {
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
