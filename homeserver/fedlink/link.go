package fedlink

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"hearth/federation"
	"hearth/federation/fedwire"
	"hearth/homeserver/hub"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/keys/serverkey"
	"hearth/storage"
)

// Config tunes server-to-server traffic (docs/federation.md).
type Config struct {
	// Address is the HOST:PORT published as "federation" in the key
	// document (delegation); set by the caller once it listens.
	Address string
	// SendWait bounds how long a device's Send to a remote hub waits for
	// the hub's verdict before it is answered CODE_UNAVAILABLE (retry with
	// the same message id). Default 5s.
	SendWait time.Duration
	Outbound federation.OutboundConfig
	// Inbound per-origin limit on transactions and queries: default 50/s, burst 200.
	RatePerSecond float64
	RateBurst     float64
	Limits        federation.Limits
	// Resolver looks up the names of domains that are not pinned, for
	// discovery (federation.Discovery); nil: net.DefaultResolver. Tests
	// inject one that answers from a table and sends nothing out.
	Resolver federation.Resolver
	// DiscoveryDial dials an address Resolver gave (IP:443) to fetch a key
	// document; nil: a net.Dialer. Tests send it to loopback.
	DiscoveryDial func(ctx context.Context, network, addr string) (net.Conn, error)
	// DiscoverTestNames lets discovery look up .test and .example names
	// (tests, with an injected Resolver); otherwise they have no server.
	DiscoverTestNames bool
	// DiscoverTestAddresses lets a discovered key document name an IP
	// address as its federation address and dials it as given (tests on
	// loopback); otherwise it must be a public host name, dialled only at
	// public addresses.
	DiscoverTestAddresses bool
	// DiscoveryCAPEM, when set, is the CA trusted (instead of the system
	// roots) for discovery and for federation connections to discovered
	// peers.
	DiscoveryCAPEM []byte
	// DiscoveryRoots, when DiscoveryCAPEM is empty, verifies discovery
	// and discovered peers (the system roots plus the operator's extra
	// roots, federation.extra_roots); nil: the system roots.
	DiscoveryRoots *x509.CertPool
	// KeyValidity is the validity window this server publishes for its
	// current key: the key document gives it valid_until_ms = now +
	// KeyValidity, so a peer fetches the document again at least that
	// often while it hears from this server, and learns of a rotation
	// within that time. Default 1m.
	KeyValidity time.Duration
	// KeyDir is the folder of the private federation key (federation.key,
	// mode 0600); the database holds only public keys. Empty: the key
	// given at start is used and rotation is refused.
	KeyDir string
	// KeyRefreshInterval is how long a key id that a re-fetch of a peer's
	// key document did not find is refused without another fetch.
	// Default 30s.
	KeyRefreshInterval time.Duration
	// KeyRefreshGap is the least time between two re-fetches of one peer's
	// key document (on a signature by a key id not looked for yet); a
	// request within it is refused as temporary. Default 1s.
	KeyRefreshGap time.Duration
	// Claims of this server's users' single-use KeyPackages by remote
	// servers, counted per claimed user: per origin server (default 1/s,
	// burst 100) and per requesting user (default 1 per 10s, burst 20).
	// Over either budget a claim gets last-resort packages only.
	ClaimRatePerOrigin, ClaimBurstPerOrigin       float64
	ClaimRatePerRequester, ClaimBurstPerRequester float64
	// Inbound bodies read at once (federation.Handler): in all (default
	// 32) and per claimed origin (default 4).
	MaxBodies, MaxBodiesPerOrigin int
	// BodyTimeout bounds reading one inbound body (default 30s).
	BodyTimeout time.Duration
	// MaxMediaChunk bounds one range of a remote media read (set by the
	// homeserver from its media config).
	MaxMediaChunk int
}

// Notifier wakes the sessions of a device whose mailbox grew (the
// homeserver's Router).
type Notifier interface {
	Notify(deviceID string, head uint64)
}

// Sessions pushes ephemeral frames (typing, presence) to live sessions.
type Sessions interface {
	// PushDevices pushes ev to the sessions of the devices ids.
	PushDevices(ids []string, ev *wire.ServerFrame)
	// PushPresence pushes a presence to the active (not passive)
	// sessions of the users ids, without its time to those who hide
	// their own last seen.
	PushPresence(ids []int64, ev *wire.PresenceEvent)
}

// Directory answers queries about this server's users' devices.
type Directory interface {
	LocalDeviceList(ctx context.Context, op, user string) (*wire.DeviceListResult, error)
	ClaimLocal(ctx context.Context, op string, users, excludeDevices []string) (*wire.ClaimResult, error)
	// ClaimLocalFor with lastResortOnly hands out last-resort packages
	// only (a remote requester over its claim budget).
	ClaimLocalFor(ctx context.Context, op string, users, excludeDevices []string, lastResortOnly bool) (*wire.ClaimResult, error)
}

// Presence records the presence of users of other servers and answers
// queries about this server's users' (homeserver's Presence and settings).
type Presence interface {
	// Set records user's state set at atMs, lapsing at untilMs (0:
	// never); it reports whether the state or atMs changed.
	Set(user string, state wire.PresenceState, atMs, untilMs int64) bool
	Get(user string) (state wire.PresenceState, atMs int64)
	// VisibleTo returns the presence of this server's users as reader, a
	// user of another server, may see it (their last-seen settings);
	// vouched are the users the reader's server says share a
	// conversation it hubs with the reader.
	VisibleTo(ctx context.Context, reader string, users, vouched []string) ([]PresenceAnswer, error)
}

// PresenceAnswer is a user's presence as a reader may see it, and whether
// the reader counts as the user's contact.
type PresenceAnswer struct {
	Event   *wire.PresenceEvent
	Contact bool
}

// MediaSource reads a range of a media file this server holds.
type MediaSource interface {
	Download(ctx context.Context, r *wire.DownloadMedia) (*wire.MediaData, error)
}

// Deps are the Link's collaborators; every field is required.
type Deps struct {
	DB       *storage.DB
	Key      *serverkey.Key // the signing key until the first rotation
	Hub      *hub.Hub
	Policy   *federation.Policy // from LoadPolicy
	Notifier Notifier
	Sessions Sessions
	Dir      Directory
	Presence Presence
	Media    MediaSource
	Log      *slog.Logger
	Now      func() time.Time
	Rand     io.Reader
}

// base is what every part of the link shares: the server's identity,
// its collaborators and the federation client and queues.
type base struct {
	domain   string
	cfg      Config
	db       *storage.DB
	hub      *hub.Hub
	log      *slog.Logger
	now      func() time.Time
	rand     io.Reader
	notifier Notifier
	sessions Sessions
	dir      Directory
	presence Presence
	media    MediaSource
	policy   *federation.Policy
	client   *federation.Client
	out      *federation.Outbound
	pb       *Peers
}

func (b *base) nowMs() int64 { return b.now().UnixMilli() }

// notify tells the sessions of new mailbox heads.
func (b *base) notify(heads []storage.Head) {
	for _, h := range heads {
		b.notifier.Notify(h.DeviceID, h.Seq)
	}
}

// Link is the homeserver's federation: it applies the envelopes peers
// send (inbound.go), queues what this server sends them (outbound.go) and
// tells senders of what could not be delivered (failed.go). Its parts:
// Peers (peer table, discovery, keys), Queries (signed queries both ways)
// and Signals (typing and presence).
type Link struct {
	*base
	Peers   *Peers
	Queries *Queries
	Signals *Signals

	ver    *federation.Verifier
	lim    *federation.RateLimiter
	sigLim *federation.RateLimiter // signal path, per origin (signals.go)

	handlerOnce sync.Once
	handler     *federation.Handler

	mu      sync.Mutex
	waiters map[string]chan struct{} // SUBMIT envelope id -> closed on verdict
}

// Peers is the peer table (pinned and discovered), their key documents,
// and this server's own signing keys.
type Peers struct {
	*base
	rotMu sync.Mutex // one key rotation at a time

	mu         sync.Mutex
	key        *serverkey.Key
	curPub     serverkey.PublicKey    // the current key as published
	retired    []serverkey.PublicKey  // older keys, published with their end
	refreshed  map[string]time.Time   // last key refresh per peer
	unknownIDs map[string]time.Time   // "domain keyid" a refresh did not find: when (keys.go)
	refreshing map[string]*keyRefresh // refreshes under way, by peer (keys.go)
	found      map[string]time.Time   // peers known by discovery (not pinned): when
	peers      map[string]federation.Peer
	keys       map[string]*serverkey.Set
	disc       *federation.Discovery // bounded, cached .well-known fetches
}

// Queries sends signed queries to peers (device lists, KeyPackages, media
// ranges) and answers theirs.
type Queries struct {
	*base
	// claimOrigin and claimRequester bound remote claims of single-use
	// KeyPackages per origin and per requesting user (query.go).
	claimOrigin, claimRequester *federation.RateLimiter
	down                        peerDown // peers whose last query got no answer (peerdown.go)
}

// Signals carries typing and presence on the lossy signal path.
type Signals struct {
	*base
	// signals bounds signal transactions in flight.
	signals chan struct{}
	// peerOf: local user id -> remote users whose presence it was told.
	peersMu sync.Mutex
	peerOf  map[int64]map[string]struct{}
}

var (
	_ federation.Inbound      = (*Link)(nil)
	_ federation.Queue        = (*Link)(nil)
	_ federation.PeerSource   = (*Peers)(nil)
	_ federation.KeyResolver  = (*Peers)(nil)
	_ federation.KeyRefresher = (*Peers)(nil)
)

// LoadPolicy reads the stored federation policy (open when none was set).
func LoadPolicy(ctx context.Context, db *storage.DB) (*federation.Policy, error) {
	var pol *storage.FedPolicy
	if err := db.Read(ctx, func(tx *storage.Tx) (err error) { pol, err = tx.FedPolicy(); return err }); err != nil {
		return nil, fmt.Errorf("homeserver/fedlink: load federation policy: %w", err)
	}
	mode := federation.ModeOpen
	if pol.Mode != "" {
		var err error
		if mode, err = federation.ParseMode(pol.Mode); err != nil {
			return nil, err
		}
	}
	return federation.NewPolicy(mode, pol.Allow, pol.Deny), nil
}

// inboundRate is the per-origin inbound limit with its defaults: 50 per
// second, burst 200.
func inboundRate(rate, burst float64) (float64, float64) {
	if rate <= 0 {
		rate = 50
	}
	if burst <= 0 {
		burst = 200
	}
	return rate, burst
}

// SetInboundRate changes the per-origin inbound limit (Config.RatePerSecond,
// RateBurst; zero: the defaults) of the running link.
func (f *Link) SetInboundRate(rate, burst float64) {
	f.lim.SetRate(inboundRate(rate, burst))
}

// New loads the signing keys and pinned peers, and wakes the sender loop
// of every destination with a backlog.
func New(domain string, cfg Config, deps Deps) (*Link, error) {
	if cfg.SendWait <= 0 {
		cfg.SendWait = 5 * time.Second
	}
	cfg.RatePerSecond, cfg.RateBurst = inboundRate(cfg.RatePerSecond, cfg.RateBurst)
	if cfg.KeyRefreshInterval <= 0 {
		cfg.KeyRefreshInterval = 30 * time.Second
	}
	if cfg.ClaimRatePerOrigin <= 0 {
		cfg.ClaimRatePerOrigin = 1
	}
	if cfg.ClaimBurstPerOrigin <= 0 {
		cfg.ClaimBurstPerOrigin = 100
	}
	if cfg.ClaimRatePerRequester <= 0 {
		cfg.ClaimRatePerRequester = 0.1
	}
	if cfg.ClaimBurstPerRequester <= 0 {
		cfg.ClaimBurstPerRequester = 20
	}
	if cfg.KeyRefreshGap <= 0 {
		cfg.KeyRefreshGap = time.Second
	}
	if cfg.KeyValidity <= 0 {
		cfg.KeyValidity = time.Minute
	}
	b := &base{domain: domain, cfg: cfg, db: deps.DB, hub: deps.Hub, log: deps.Log, now: deps.Now, rand: deps.Rand,
		notifier: deps.Notifier, sessions: deps.Sessions, dir: deps.Dir, presence: deps.Presence, media: deps.Media,
		policy: deps.Policy}
	pb := &Peers{base: b, peers: map[string]federation.Peer{}, keys: map[string]*serverkey.Set{},
		refreshed: map[string]time.Time{}, found: map[string]time.Time{}}
	b.pb = pb
	var err error
	if pb.disc, err = newDiscovery(cfg, b.now, b.log); err != nil {
		return nil, err
	}
	if err := pb.loadKeys(context.Background(), deps.Key); err != nil {
		return nil, err
	}
	var peers []*storage.FedPeer
	if err := b.db.Read(context.Background(), func(tx *storage.Tx) (err error) { peers, err = tx.FedPeers(); return err }); err != nil {
		return nil, fmt.Errorf("homeserver/fedlink: load federation peers: %w", err)
	}
	for _, p := range peers {
		// A stored document's fetch time is not kept: its keys are used
		// after the next fetch (ParseKeyDocument marks them stale).
		if err := pb.cachePeer(p, time.Time{}); err != nil {
			b.log.Warn("federation: ignoring a stored peer", "domain", p.Domain, "err", err)
		}
	}
	f := &Link{base: b, Peers: pb, Queries: &Queries{base: b,
		claimOrigin:    &federation.RateLimiter{Rate: cfg.ClaimRatePerOrigin, Burst: cfg.ClaimBurstPerOrigin, Now: b.now},
		claimRequester: &federation.RateLimiter{Rate: cfg.ClaimRatePerRequester, Burst: cfg.ClaimBurstPerRequester, Now: b.now}},
		Signals: &Signals{base: b, signals: make(chan struct{}, maxSignalFlights)}, waiters: map[string]chan struct{}{}}
	b.client = &federation.Client{Peers: pb, MaxMediaChunk: cfg.MaxMediaChunk}
	b.out = &federation.Outbound{Self: domain, CurrentKey: pb.SigningKey, Net: b.client, Queue: f, Cfg: cfg.Outbound,
		Log: b.log.With("component", "federation"), Now: b.now, Allowed: b.policy.Allowed}
	f.ver = &federation.Verifier{Self: domain, Keys: pb, Policy: b.policy, Limits: cfg.Limits, Now: b.now}
	f.lim = &federation.RateLimiter{Rate: cfg.RatePerSecond, Burst: cfg.RateBurst, Now: b.now}
	f.sigLim = &federation.RateLimiter{Rate: signalRate, Burst: signalBurst, Now: b.now}
	f.start()
	return f, nil
}

// Wake starts the sender loop of dest.
func (f *Link) Wake(dest string) { f.out.Wake(dest) }

// start wakes the sender loop of every destination with a backlog.
func (f *Link) start() {
	var depths map[string]int
	err := f.db.Read(context.Background(), func(tx *storage.Tx) (err error) { depths, err = tx.QueueDepths(); return err })
	if err != nil {
		f.log.Error("federation: read queues", "err", err)
		return
	}
	for d := range depths {
		f.out.Wake(d)
	}
}

// Query answers a verified query about this server's users (Queries).
func (f *Link) Query(ctx context.Context, q *fedwire.Query) *fedwire.QueryResult {
	return f.Queries.Answer(ctx, q)
}

// Close stops the sender loops and closes the connections to peers.
func (f *Link) Close() {
	f.out.Close()
	f.client.Close()
}

// Handler serves /hearth/federation/v1/… and /.well-known/hearth/server.
// It is one handler per Link, so that its bounds on bodies in flight hold
// for the server as a whole.
func (f *Link) Handler() http.Handler {
	f.handlerOnce.Do(func() {
		f.handler = &federation.Handler{Verifier: f.ver, Limiter: f.lim, Inbound: f, KeyDoc: f.Peers.keyDoc,
			Log: f.log.With("component", "federation"), Signals: f.Signals.ApplySignals, SignalLimiter: f.sigLim,
			MaxBodies: f.cfg.MaxBodies, MaxBodiesPerOrigin: f.cfg.MaxBodiesPerOrigin, BodyTimeout: f.cfg.BodyTimeout}
	})
	return f.handler
}

// deviceDomain is the domain of a device address, "" when it is not one.
func deviceDomain(addr string) string {
	d, err := identity.ParseDevice(addr)
	if err != nil {
		return ""
	}
	return d.Domain()
}

func newEnvelopeID(prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}
