package fedlink

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"hearth/federation"
	"hearth/homeserver/admin"
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
	// DiscoveryClient fetches https://DOMAIN/.well-known/hearth/server for
	// domains that are not pinned; nil: http.DefaultClient (WebPKI). Tests
	// inject one that resolves to loopback and trusts a test CA.
	DiscoveryClient *http.Client
	// DiscoveryCAPEM, when set, is the CA trusted (instead of the system
	// roots) for federation connections to discovered peers.
	DiscoveryCAPEM []byte
	// KeyRefreshInterval is the least time between two re-fetches of one
	// peer's key document (on a signature by an unknown key id). Default 30s.
	KeyRefreshInterval time.Duration
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
	// PushActiveUsers pushes ev to the active sessions of the users ids.
	PushActiveUsers(ids []int64, ev *wire.ServerFrame)
}

// Directory answers queries about this server's users' devices.
type Directory interface {
	LocalDeviceList(ctx context.Context, op, user string) (*wire.DeviceListResult, error)
	ClaimLocal(ctx context.Context, op string, users, excludeDevices []string) (*wire.ClaimResult, error)
}

// PresenceSetter records a remote user's presence.
type PresenceSetter interface {
	Set(user string, state wire.PresenceState, atMs int64)
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
	Presence PresenceSetter
	Media    MediaSource
	Log      *slog.Logger
	Now      func() time.Time
	Rand     io.Reader
}

// Link is the homeserver's federation: it applies what peers send, queues
// what this server sends them, and answers their queries.
type Link struct {
	domain   string
	db       *storage.DB
	hub      *hub.Hub
	log      *slog.Logger
	now      func() time.Time
	rand     io.Reader
	notifier Notifier
	sessions Sessions
	dir      Directory
	presence PresenceSetter
	media    MediaSource

	key    *serverkey.Key
	cfg    Config
	policy *federation.Policy
	client *federation.Client
	out    *federation.Outbound
	ver    *federation.Verifier
	lim    *federation.RateLimiter
	sigLim *federation.RateLimiter // signal path, per origin (signals.go)
	// signals bounds signal transactions in flight (signals.go).
	signals chan struct{}
	// peerOf: local user id -> remote users whose presence it was told
	// (presence.go).
	peersMu sync.Mutex
	peerOf  map[int64]map[string]struct{}

	rotMu sync.Mutex // one key rotation at a time

	mu         sync.Mutex
	curPub     serverkey.PublicKey    // the current key as published
	retired    []serverkey.PublicKey  // older keys, published with their end
	refreshed  map[string]time.Time   // last key refresh per peer
	refreshing map[string]*keyRefresh // refreshes under way, by peer (keys.go)
	found      map[string]time.Time   // peers known by discovery (not pinned): when
	peers      map[string]federation.Peer
	keys       map[string]*serverkey.Set
	waiters    map[string]chan struct{} // SUBMIT envelope id -> closed on verdict
}

var (
	_ federation.Inbound     = (*Link)(nil)
	_ federation.Queue       = (*Link)(nil)
	_ federation.PeerSource  = (*Link)(nil)
	_ federation.KeyResolver = (*Link)(nil)
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

// New loads the signing keys and pinned peers, and wakes the sender loop
// of every destination with a backlog.
func New(domain string, cfg Config, deps Deps) (*Link, error) {
	if cfg.SendWait <= 0 {
		cfg.SendWait = 5 * time.Second
	}
	if cfg.RatePerSecond <= 0 {
		cfg.RatePerSecond = 50
	}
	if cfg.RateBurst <= 0 {
		cfg.RateBurst = 200
	}
	if cfg.KeyRefreshInterval <= 0 {
		cfg.KeyRefreshInterval = 30 * time.Second
	}
	f := &Link{domain: domain, db: deps.DB, hub: deps.Hub, log: deps.Log, now: deps.Now, rand: deps.Rand,
		notifier: deps.Notifier, sessions: deps.Sessions, dir: deps.Dir, presence: deps.Presence, media: deps.Media,
		key: deps.Key, cfg: cfg, policy: deps.Policy, peers: map[string]federation.Peer{}, keys: map[string]*serverkey.Set{},
		waiters: map[string]chan struct{}{}, refreshed: map[string]time.Time{}, found: map[string]time.Time{}}
	if err := f.loadKeys(context.Background(), deps.Key); err != nil {
		return nil, err
	}
	var peers []*storage.FedPeer
	if err := f.db.Read(context.Background(), func(tx *storage.Tx) (err error) { peers, err = tx.FedPeers(); return err }); err != nil {
		return nil, fmt.Errorf("homeserver/fedlink: load federation peers: %w", err)
	}
	for _, p := range peers {
		if err := f.cachePeer(p); err != nil {
			f.log.Warn("federation: ignoring a stored peer", "domain", p.Domain, "err", err)
		}
	}
	f.client = &federation.Client{Peers: f}
	f.out = &federation.Outbound{Self: domain, CurrentKey: f.SigningKey, Net: f.client, Queue: f, Cfg: cfg.Outbound,
		Log: f.log.With("component", "federation"), Now: f.now, Allowed: f.policy.Allowed}
	f.ver = &federation.Verifier{Self: domain, Keys: f, Policy: f.policy, Limits: cfg.Limits, Now: f.now}
	f.lim = &federation.RateLimiter{Rate: cfg.RatePerSecond, Burst: cfg.RateBurst, Now: f.now}
	f.sigLim = &federation.RateLimiter{Rate: signalRate, Burst: signalBurst, Now: f.now}
	f.signals = make(chan struct{}, maxSignalFlights)
	f.start()
	return f, nil
}

func (f *Link) nowMs() int64 { return f.now().UnixMilli() }

// notify tells the sessions of new mailbox heads.
func (f *Link) notify(heads []storage.Head) {
	for _, h := range heads {
		f.notifier.Notify(h.DeviceID, h.Seq)
	}
}

// Allowed reports whether the policy allows federation with domain.
func (f *Link) Allowed(domain string) bool { return f.policy.Allowed(domain) }

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

// Close stops the sender loops and closes the connections to peers.
func (f *Link) Close() {
	f.out.Close()
	f.client.Close()
}

func (f *Link) cachePeer(p *storage.FedPeer) error {
	var set *serverkey.Set
	if len(p.KeysJSON) > 0 {
		var err error
		if _, set, err = federation.ParseKeyDocument(p.KeysJSON, p.Domain); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.peers[p.Domain] = federation.Peer{Domain: p.Domain, Address: p.Address, CAPEM: p.CAPEM}
	delete(f.found, p.Domain) // pinned now
	if set != nil {
		f.keys[p.Domain] = set
	}
	return nil
}

// Peer implements federation.PeerSource from the pinned peer table.
// Discovery through .well-known over WebPKI is the fallback for unpinned
// domains: the document's "federation" address, system roots.
func (f *Link) Peer(ctx context.Context, domain string) (federation.Peer, error) {
	f.rediscoverStale(ctx, domain)
	f.mu.Lock()
	p, ok := f.peers[domain]
	f.mu.Unlock()
	if ok {
		return p, nil
	}
	if _, err := f.discover(ctx, domain); err != nil {
		return federation.Peer{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.peers[domain]; ok {
		return p, nil
	}
	return federation.Peer{}, fmt.Errorf("%w: %s", federation.ErrNoPeer, domain)
}

// ServerKeys implements federation.KeyResolver.
func (f *Link) ServerKeys(ctx context.Context, domain string) (*serverkey.Set, error) {
	f.rediscoverStale(ctx, domain)
	f.mu.Lock()
	set, ok := f.keys[domain]
	_, pinned := f.peers[domain]
	f.mu.Unlock()
	if ok {
		return set, nil
	}
	if pinned {
		return nil, fmt.Errorf("%w: %s is pinned without keys", federation.ErrNoPeer, domain)
	}
	return f.discover(ctx, domain)
}

// discoveryTTL is how long a discovered key document is used before it is
// fetched again.
const discoveryTTL = time.Hour

// rediscoverStale fetches the document of a domain discovered more than
// discoveryTTL ago; on failure the old one stays in use (logged).
func (f *Link) rediscoverStale(ctx context.Context, domain string) {
	f.mu.Lock()
	at, found := f.found[domain]
	stale := found && f.now().Sub(at) > discoveryTTL
	if stale {
		f.found[domain] = f.now() // one attempt per TTL, whatever the outcome
	}
	f.mu.Unlock()
	if !stale {
		return
	}
	if _, err := f.discover(ctx, domain); err != nil {
		f.log.Warn("federation: rediscovery failed; keeping the previous document", "domain", domain, "err", err)
	}
}

// discover fetches https://DOMAIN/.well-known/hearth/server with WebPKI
// and caches the address and keys.
func (f *Link) discover(ctx context.Context, domain string) (*serverkey.Set, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+domain+federation.PathKeyDocument, nil)
	if err != nil {
		return nil, err
	}
	hc := f.cfg.DiscoveryClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("discover %s: %w", domain, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("discover %s: HTTP %d", domain, resp.StatusCode)
	}
	b := make([]byte, 0, 4096)
	buf := make([]byte, 4096)
	for len(b) < 1<<20 {
		n, err := resp.Body.Read(buf)
		b = append(b, buf[:n]...)
		if err != nil {
			break
		}
	}
	doc, set, err := federation.ParseKeyDocument(b, domain)
	if err != nil {
		return nil, err
	}
	if _, _, err := net.SplitHostPort(doc.Federation); err != nil {
		return nil, fmt.Errorf("discover %s: federation address %q: %w", domain, doc.Federation, err)
	}
	f.mu.Lock()
	f.peers[domain] = federation.Peer{Domain: domain, Address: doc.Federation, CAPEM: f.cfg.DiscoveryCAPEM}
	f.keys[domain] = set
	f.found[domain] = f.now()
	f.mu.Unlock()
	return set, nil
}

// Handler serves /hearth/federation/v1/… and /.well-known/hearth/server.
func (f *Link) Handler() http.Handler {
	return &federation.Handler{Verifier: f.ver, Limiter: f.lim, Inbound: f, KeyDoc: f.keyDoc,
		Log: f.log.With("component", "federation"), Signals: f.ApplySignals, SignalLimiter: f.sigLim}
}

// SetAddress sets the address published in the key document (known once
// the transport listens).
func (f *Link) SetAddress(addr string) {
	f.mu.Lock()
	f.cfg.Address = addr
	f.mu.Unlock()
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

// PeerAdd pins a peer: its address, the CA to trust, and the key document
// fetched from that address now.
func (f *Link) PeerAdd(ctx context.Context, domain, address string, caPEM []byte) (admin.PeerInfo, error) {
	const op = "homeserver.FederationPeerAdd"
	if err := federation.ValidDomain(domain); err != nil || domain == f.domain {
		return admin.PeerInfo{}, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "invalid peer domain %q", domain)
	}
	p := federation.Peer{Domain: domain, Address: address, CAPEM: caPEM}
	doc, err := federation.FetchKeyDocument(ctx, p)
	if err != nil {
		return admin.PeerInfo{}, wire.Errorf(op, wire.Code_CODE_UNAVAILABLE, "fetch key document from %s: %v", address, err)
	}
	if _, _, err := federation.ParseKeyDocument(doc, domain); err != nil {
		return admin.PeerInfo{}, wire.Errorf(op, wire.Code_CODE_BAD_SIGNATURE, "key document from %s: %v", address, err)
	}
	sp := &storage.FedPeer{Domain: domain, Address: address, CAPEM: caPEM, KeysJSON: doc, AddedMs: f.nowMs()}
	if err := f.db.Write(ctx, func(tx *storage.Tx) error { return tx.PutFedPeer(sp) }); err != nil {
		return admin.PeerInfo{}, wire.Internal(op, err)
	}
	if err := f.cachePeer(sp); err != nil {
		return admin.PeerInfo{}, wire.Internal(op, err)
	}
	f.client.Reset(domain)
	f.out.Wake(domain)
	infos, err := f.List(ctx)
	if err != nil {
		return admin.PeerInfo{}, err
	}
	for _, pi := range infos.Peers {
		if pi.Domain == domain {
			return pi, nil
		}
	}
	return admin.PeerInfo{}, wire.Internal(op, errors.New("peer vanished"))
}

// List reports peers, queue depths, last contact and backoff.
func (f *Link) List(ctx context.Context) (admin.FederationInfo, error) {
	const op = "homeserver.FederationList"
	var peers []*storage.FedPeer
	var depths map[string]int
	var pol *storage.FedPolicy
	err := f.db.Read(ctx, func(tx *storage.Tx) (err error) {
		if peers, err = tx.FedPeers(); err != nil {
			return err
		}
		if pol, err = tx.FedPolicy(); err != nil {
			return err
		}
		depths, err = tx.QueueDepths()
		return err
	})
	if err != nil {
		return admin.FederationInfo{}, wire.Internal(op, err)
	}
	info := admin.FederationInfo{Domain: f.domain, KeyID: string(f.SigningKey().ID()), Mode: string(federation.ModeOpen),
		Allow: pol.Allow, Deny: pol.Deny}
	if pol.Mode != "" {
		info.Mode = pol.Mode
	}
	status := map[string]federation.DestStatus{}
	for _, st := range f.out.Status() {
		status[st.Destination] = st
	}
	seen := map[string]bool{}
	add := func(domain, address string, pinned bool) {
		seen[domain] = true
		st := status[domain]
		pi := admin.PeerInfo{Domain: domain, Address: address, Pinned: pinned, QueueDepth: depths[domain],
			Attempts: st.Attempts, LastError: st.LastError, Sent: st.Sent, Expired: st.Expired}
		if !st.LastContact.IsZero() {
			pi.LastContactMs = st.LastContact.UnixMilli()
		}
		if !st.NextAttempt.IsZero() {
			pi.NextAttemptMs = st.NextAttempt.UnixMilli()
		}
		info.Peers = append(info.Peers, pi)
	}
	for _, p := range peers {
		add(p.Domain, p.Address, true)
	}
	for d := range depths {
		if !seen[d] {
			add(d, "", false)
		}
	}
	for d := range status {
		if !seen[d] {
			add(d, "", false)
		}
	}
	return info, nil
}

// SetPolicy changes the policy: op is "allow", "deny" or "mode".
func (f *Link) SetPolicy(ctx context.Context, op, value string) error {
	const o = "homeserver.FederationPolicy"
	var write func(tx *storage.Tx) error
	var apply func()
	switch op {
	case "allow", "deny":
		if err := federation.ValidDomain(value); err != nil {
			return wire.Errorf(o, wire.Code_CODE_BAD_REQUEST, "%v", err)
		}
		write = func(tx *storage.Tx) error { return tx.SetFedList(value, op) }
		apply = func() {
			if op == "allow" {
				f.policy.Allow(value)
			} else {
				f.policy.Deny(value)
			}
		}
	case "mode":
		m, err := federation.ParseMode(value)
		if err != nil {
			return wire.Errorf(o, wire.Code_CODE_BAD_REQUEST, "%v", err)
		}
		write = func(tx *storage.Tx) error { return tx.SetFedMode(string(m)) }
		apply = func() { f.policy.SetMode(m) }
	default:
		return wire.Errorf(o, wire.Code_CODE_BAD_REQUEST, "unknown policy operation %q", op)
	}
	if err := f.db.Write(ctx, write); err != nil {
		return wire.Internal(o, err)
	}
	apply()
	return nil
}
