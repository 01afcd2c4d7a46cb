package homeserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"hearth/federation"
	"hearth/federation/fedwire"
	"hearth/homeserver/admin"
	"hearth/homeserver/wire"
	"hearth/keys/serverkey"
	"hearth/storage"
)

// FederationConfig tunes server-to-server traffic (docs/federation.md).
type FederationConfig struct {
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
}

// fed is the homeserver's federation state; nil when no server key was given.
type fed struct {
	s      *Server
	key    *serverkey.Key
	cfg    FederationConfig
	policy *federation.Policy
	client *federation.Client
	out    *federation.Outbound
	ver    *federation.Verifier
	lim    *federation.RateLimiter
	sigLim *federation.RateLimiter // signal path, per origin (fed_signals.go)
	// signals bounds signal transactions in flight (fed_signals.go).
	signals chan struct{}
	// peerOf: local user id -> remote users whose presence it was told
	// (fed_presence.go).
	peersMu sync.Mutex
	peerOf  map[int64]map[string]struct{}

	rotMu sync.Mutex // one key rotation at a time

	mu         sync.Mutex
	curPub     serverkey.PublicKey    // the current key as published
	retired    []serverkey.PublicKey  // older keys, published with their end
	refreshed  map[string]time.Time   // last key refresh per peer
	refreshing map[string]*keyRefresh // refreshes under way, by peer (fed_keys.go)
	found      map[string]time.Time   // peers known by discovery (not pinned): when
	peers      map[string]federation.Peer
	keys       map[string]*serverkey.Set
	waiters    map[string]chan struct{} // SUBMIT envelope id -> closed on verdict
}

var (
	_ federation.Inbound     = (*fed)(nil)
	_ federation.Queue       = (*fed)(nil)
	_ federation.PeerSource  = (*fed)(nil)
	_ federation.KeyResolver = (*fed)(nil)
)

func newFed(s *Server, key *serverkey.Key) (*fed, error) {
	cfg := s.cfg.Federation
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
	f := &fed{s: s, key: key, cfg: cfg, peers: map[string]federation.Peer{}, keys: map[string]*serverkey.Set{},
		waiters: map[string]chan struct{}{}, refreshed: map[string]time.Time{}, found: map[string]time.Time{}}
	if err := f.loadKeys(context.Background(), key); err != nil {
		return nil, err
	}
	var pol *storage.FedPolicy
	var peers []*storage.FedPeer
	err := s.db.Read(context.Background(), func(tx *storage.Tx) (err error) {
		if pol, err = tx.FedPolicy(); err != nil {
			return err
		}
		peers, err = tx.FedPeers()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("homeserver: load federation state: %w", err)
	}
	mode := federation.ModeOpen
	if pol.Mode != "" {
		if mode, err = federation.ParseMode(pol.Mode); err != nil {
			return nil, err
		}
	}
	f.policy = federation.NewPolicy(mode, pol.Allow, pol.Deny)
	for _, p := range peers {
		if err := f.cachePeer(p); err != nil {
			s.log.Warn("federation: ignoring a stored peer", "domain", p.Domain, "err", err)
		}
	}
	f.client = &federation.Client{Peers: f}
	f.out = &federation.Outbound{Self: s.cfg.Domain, CurrentKey: f.signingKey, Net: f.client, Queue: f, Cfg: cfg.Outbound,
		Log: s.log.With("component", "federation"), Now: s.now, Allowed: f.policy.Allowed}
	f.ver = &federation.Verifier{Self: s.cfg.Domain, Keys: f, Policy: f.policy, Limits: cfg.Limits, Now: s.now}
	f.lim = &federation.RateLimiter{Rate: cfg.RatePerSecond, Burst: cfg.RateBurst, Now: s.now}
	f.sigLim = &federation.RateLimiter{Rate: signalRate, Burst: signalBurst, Now: s.now}
	f.signals = make(chan struct{}, maxSignalFlights)
	return f, nil
}

// start wakes the sender loop of every destination with a backlog.
func (f *fed) start() {
	var depths map[string]int
	err := f.s.db.Read(context.Background(), func(tx *storage.Tx) (err error) { depths, err = tx.QueueDepths(); return err })
	if err != nil {
		f.s.log.Error("federation: read queues", "err", err)
		return
	}
	for d := range depths {
		f.out.Wake(d)
	}
}

func (f *fed) close() {
	f.out.Close()
	f.client.Close()
}

func (f *fed) cachePeer(p *storage.FedPeer) error {
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
func (f *fed) Peer(ctx context.Context, domain string) (federation.Peer, error) {
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
func (f *fed) ServerKeys(ctx context.Context, domain string) (*serverkey.Set, error) {
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
func (f *fed) rediscoverStale(ctx context.Context, domain string) {
	f.mu.Lock()
	at, found := f.found[domain]
	stale := found && f.s.now().Sub(at) > discoveryTTL
	if stale {
		f.found[domain] = f.s.now() // one attempt per TTL, whatever the outcome
	}
	f.mu.Unlock()
	if !stale {
		return
	}
	if _, err := f.discover(ctx, domain); err != nil {
		f.s.log.Warn("federation: rediscovery failed; keeping the previous document", "domain", domain, "err", err)
	}
}

// discover fetches https://DOMAIN/.well-known/hearth/server with WebPKI
// and caches the address and keys.
func (f *fed) discover(ctx context.Context, domain string) (*serverkey.Set, error) {
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
	f.found[domain] = f.s.now()
	f.mu.Unlock()
	return set, nil
}

// FederationHandler serves /hearth/federation/v1/… and
// /.well-known/hearth/server; nil when federation is off.
func (s *Server) FederationHandler() http.Handler {
	if s.fed == nil {
		return nil
	}
	return &federation.Handler{Verifier: s.fed.ver, Limiter: s.fed.lim, Inbound: s.fed, KeyDoc: s.fed.keyDoc,
		Log: s.log.With("component", "federation"), Signals: s.fed.applySignals, SignalLimiter: s.fed.sigLim}
}

// SetFederationAddress sets the address published in the key document
// (known once the transport listens).
func (s *Server) SetFederationAddress(addr string) {
	if s.fed != nil {
		s.fed.mu.Lock()
		s.fed.cfg.Address = addr
		s.fed.mu.Unlock()
	}
}

func newEnvelopeID(prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

var errFedOff = wire.Errorf("homeserver.federation", wire.Code_CODE_UNAVAILABLE, "federation is not enabled on this server")

// FederationPeerAdd pins a peer: its address, the CA to trust, and the key
// document fetched from that address now.
func (s *Server) FederationPeerAdd(ctx context.Context, domain, address string, caPEM []byte) (admin.PeerInfo, error) {
	const op = "homeserver.FederationPeerAdd"
	if s.fed == nil {
		return admin.PeerInfo{}, errFedOff
	}
	if err := federation.ValidDomain(domain); err != nil || domain == s.cfg.Domain {
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
	sp := &storage.FedPeer{Domain: domain, Address: address, CAPEM: caPEM, KeysJSON: doc, AddedMs: s.nowMs()}
	if err := s.db.Write(ctx, func(tx *storage.Tx) error { return tx.PutFedPeer(sp) }); err != nil {
		return admin.PeerInfo{}, internal(op, err)
	}
	if err := s.fed.cachePeer(sp); err != nil {
		return admin.PeerInfo{}, internal(op, err)
	}
	s.fed.client.Reset(domain)
	s.fed.out.Wake(domain)
	infos, err := s.FederationList(ctx)
	if err != nil {
		return admin.PeerInfo{}, err
	}
	for _, pi := range infos.Peers {
		if pi.Domain == domain {
			return pi, nil
		}
	}
	return admin.PeerInfo{}, internal(op, errors.New("peer vanished"))
}

// FederationList reports peers, queue depths, last contact and backoff.
func (s *Server) FederationList(ctx context.Context) (admin.FederationInfo, error) {
	const op = "homeserver.FederationList"
	if s.fed == nil {
		return admin.FederationInfo{}, errFedOff
	}
	var peers []*storage.FedPeer
	var depths map[string]int
	var pol *storage.FedPolicy
	err := s.db.Read(ctx, func(tx *storage.Tx) (err error) {
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
		return admin.FederationInfo{}, internal(op, err)
	}
	info := admin.FederationInfo{Domain: s.cfg.Domain, KeyID: string(s.fed.signingKey().ID()), Mode: string(federation.ModeOpen),
		Allow: pol.Allow, Deny: pol.Deny}
	if pol.Mode != "" {
		info.Mode = pol.Mode
	}
	status := map[string]federation.DestStatus{}
	for _, st := range s.fed.out.Status() {
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

// FederationPolicy changes the policy: op is "allow", "deny" or "mode".
func (s *Server) FederationPolicy(ctx context.Context, op, value string) error {
	const o = "homeserver.FederationPolicy"
	if s.fed == nil {
		return errFedOff
	}
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
				s.fed.policy.Allow(value)
			} else {
				s.fed.policy.Deny(value)
			}
		}
	case "mode":
		m, err := federation.ParseMode(value)
		if err != nil {
			return wire.Errorf(o, wire.Code_CODE_BAD_REQUEST, "%v", err)
		}
		write = func(tx *storage.Tx) error { return tx.SetFedMode(string(m)) }
		apply = func() { s.fed.policy.SetMode(m) }
	default:
		return wire.Errorf(o, wire.Code_CODE_BAD_REQUEST, "unknown policy operation %q", op)
	}
	if err := s.db.Write(ctx, write); err != nil {
		return internal(o, err)
	}
	apply()
	return nil
}

// fedCode maps a homeserver error to an envelope result code.
func fedCode(err error) fedwire.Code {
	switch wire.KindOf(err) {
	case wire.Code_CODE_OK:
		return fedwire.Code_CODE_OK
	case wire.Code_CODE_INTERNAL:
		return fedwire.Code_CODE_INTERNAL
	case wire.Code_CODE_UNAVAILABLE:
		return fedwire.Code_CODE_UNAVAILABLE
	case wire.Code_CODE_NOT_FOUND:
		return fedwire.Code_CODE_NOT_FOUND
	case wire.Code_CODE_FORBIDDEN:
		return fedwire.Code_CODE_FORBIDDEN
	case wire.Code_CODE_NOT_MEMBER:
		return fedwire.Code_CODE_NOT_MEMBER
	case wire.Code_CODE_NO_KEY_PACKAGES:
		return fedwire.Code_CODE_NO_KEY_PACKAGES
	case wire.Code_CODE_STALE_EPOCH:
		return fedwire.Code_CODE_STALE_EPOCH
	case wire.Code_CODE_TOO_LARGE:
		return fedwire.Code_CODE_TOO_LARGE
	case wire.Code_CODE_RATE_LIMITED:
		return fedwire.Code_CODE_RATE_LIMITED
	}
	return fedwire.Code_CODE_BAD_REQUEST
}

// wireCode maps a federation code back for a device.
func wireCode(c fedwire.Code) wire.Code {
	switch c {
	case fedwire.Code_CODE_OK:
		return wire.Code_CODE_OK
	case fedwire.Code_CODE_FORBIDDEN:
		return wire.Code_CODE_FORBIDDEN
	case fedwire.Code_CODE_NOT_FOUND:
		return wire.Code_CODE_NOT_FOUND
	case fedwire.Code_CODE_STALE_EPOCH:
		return wire.Code_CODE_STALE_EPOCH
	case fedwire.Code_CODE_RATE_LIMITED:
		return wire.Code_CODE_RATE_LIMITED
	case fedwire.Code_CODE_TOO_LARGE:
		return wire.Code_CODE_TOO_LARGE
	case fedwire.Code_CODE_UNAVAILABLE, fedwire.Code_CODE_INTERNAL:
		return wire.Code_CODE_UNAVAILABLE
	case fedwire.Code_CODE_NOT_MEMBER:
		return wire.Code_CODE_NOT_MEMBER
	case fedwire.Code_CODE_NO_KEY_PACKAGES:
		return wire.Code_CODE_NO_KEY_PACKAGES
	case fedwire.Code_CODE_BAD_SIGNATURE:
		return wire.Code_CODE_BAD_SIGNATURE
	}
	return wire.Code_CODE_BAD_REQUEST
}
