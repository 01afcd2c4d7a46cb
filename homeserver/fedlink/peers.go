package fedlink

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"hearth/federation"
	"hearth/homeserver/wire"
	"hearth/keys/serverkey"
	"hearth/storage"
)

func (f *Peers) cachePeer(p *storage.FedPeer, fetched time.Time) error {
	var set *serverkey.Set
	if len(p.KeysJSON) > 0 {
		var err error
		if _, set, err = federation.ParseKeyDocumentAt(p.KeysJSON, p.Domain, fetched); err != nil {
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
	if f.disc != nil {
		f.disc.Forget(p.Domain)
	}
	return nil
}

// Peer implements federation.PeerSource from the pinned peer table.
// Discovery through .well-known over WebPKI is the fallback for unpinned
// domains: the document's "federation" address, system roots.
func (f *Peers) Peer(ctx context.Context, domain string) (federation.Peer, error) {
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
func (f *Peers) ServerKeys(ctx context.Context, domain string) (*serverkey.Set, error) {
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
func (f *Peers) rediscoverStale(ctx context.Context, domain string) {
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

// newDiscovery builds the bounded, cached discovery of cfg.
func newDiscovery(cfg Config, now func() time.Time, log *slog.Logger) (*federation.Discovery, error) {
	d := &federation.Discovery{Resolver: cfg.Resolver, Dial: cfg.DiscoveryDial, TestNames: cfg.DiscoverTestNames, TestAddresses: cfg.DiscoverTestAddresses,
		Now: now, Log: log.With("component", "federation"), RootCAs: cfg.DiscoveryRoots}
	if len(cfg.DiscoveryCAPEM) > 0 {
		d.RootCAs = x509.NewCertPool()
		if !d.RootCAs.AppendCertsFromPEM(cfg.DiscoveryCAPEM) {
			return nil, errors.New("homeserver/fedlink: DiscoveryCAPEM holds no certificate")
		}
	}
	return d, nil
}

// discover fetches https://DOMAIN/.well-known/hearth/server through the
// bounded, cached federation.Discovery and caches the address and keys.
// Its errors are *federation.Error whose Msg may be shown to a device.
func (f *Peers) discover(ctx context.Context, domain string) (*serverkey.Set, error) {
	doc, set, err := f.disc.Discover(ctx, domain)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.peers[domain] = federation.Peer{Domain: domain, Address: doc.Federation, CAPEM: f.cfg.DiscoveryCAPEM, Roots: f.cfg.DiscoveryRoots,
		PublicOnly: !f.cfg.DiscoverTestAddresses}
	f.keys[domain] = set
	f.found[domain] = f.now()
	f.mu.Unlock()
	return set, nil
}

// noServer returns, without any lookup, the device's error when domain is
// not pinned and is known to have no server (a special-use or invalid
// name, or a remembered permanent discovery failure); nil otherwise.
func (f *Peers) noServer(op, domain string) error {
	f.mu.Lock()
	_, pinned := f.peers[domain]
	f.mu.Unlock()
	if pinned {
		return nil
	}
	var fe *federation.Error
	if err := f.disc.Known(domain); errors.As(err, &fe) {
		return &wire.Error{Op: op, Kind: wireKind(fe.Kind), Msg: fe.Msg}
	}
	return nil
}

// SetAddress sets the address published in the key document (known once
// the transport listens).
func (f *Peers) SetAddress(addr string) {
	f.mu.Lock()
	f.cfg.Address = addr
	f.mu.Unlock()
}
