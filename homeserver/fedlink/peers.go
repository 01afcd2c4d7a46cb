package fedlink

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"hearth/federation"
	"hearth/keys/serverkey"
	"hearth/storage"
)

func (f *Peers) cachePeer(p *storage.FedPeer) error {
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

// discover fetches https://DOMAIN/.well-known/hearth/server with WebPKI
// and caches the address and keys.
func (f *Peers) discover(ctx context.Context, domain string) (*serverkey.Set, error) {
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

// SetAddress sets the address published in the key document (known once
// the transport listens).
func (f *Peers) SetAddress(addr string) {
	f.mu.Lock()
	f.cfg.Address = addr
	f.mu.Unlock()
}
