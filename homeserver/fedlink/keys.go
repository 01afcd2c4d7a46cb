package fedlink

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"hearth/federation"
	"hearth/homeserver/admin"
	"hearth/homeserver/wire"
	"hearth/keys/serverkey"
	"hearth/storage"
)

// Files of the federation key in Config.KeyDir.
const (
	FederationKeyFile = "federation.key"      // the current key (serverkey PEM, 0600)
	nextKeyFile       = "federation.key.next" // a rotation's new key until the database records it
)

// loadKeys picks the current signing key and the retired ones still
// published. The database holds public keys only; the current private key
// is KeyDir/federation.key (the key the server was started with until the
// first rotation). A seed stored in the database by an older version is
// moved to that file and wiped from the database first.
func (f *Peers) loadKeys(ctx context.Context, start *serverkey.Key) error {
	var rows []*storage.FedServerKey
	if err := f.db.Read(ctx, func(tx *storage.Tx) (err error) { rows, err = tx.FedServerKeys(); return err }); err != nil {
		return fmt.Errorf("homeserver: load federation keys: %w", err)
	}
	var curRow *storage.FedServerKey
	var retired []serverkey.PublicKey
	for _, r := range rows {
		pk := serverkey.PublicKey{ID: serverkey.ID(r.ID), Key: ed25519.PublicKey(r.Public)}
		if r.ValidFromMs != 0 {
			pk.ValidFrom = time.UnixMilli(r.ValidFromMs)
		}
		if r.ValidUntilMs != 0 {
			pk.ValidUntil = time.UnixMilli(r.ValidUntilMs)
			retired = append(retired, pk)
			continue
		}
		curRow = r
	}
	key := start
	if dir := f.cfg.KeyDir; dir != "" {
		var err error
		if key, err = f.keyFromDir(ctx, dir, start, curRow); err != nil {
			return err
		}
	} else if curRow != nil && string(start.ID()) != curRow.ID {
		return fmt.Errorf("homeserver: the current federation key is %s, but the server was given %s and no key folder", curRow.ID, start.ID())
	}
	cur := serverkey.PublicKey{ID: key.ID(), Key: key.Public()}
	if curRow != nil && curRow.ValidFromMs != 0 {
		cur.ValidFrom = time.UnixMilli(curRow.ValidFromMs)
	}
	f.mu.Lock()
	f.key, f.curPub, f.retired = key, cur, retired
	f.mu.Unlock()
	return nil
}

// keyFromDir returns the current private key from dir, after moving a
// seed an older version kept in the database out to the file and
// finishing a rotation interrupted between the database commit and the
// rename of federation.key.next.
func (f *Peers) keyFromDir(ctx context.Context, dir string, start *serverkey.Key, curRow *storage.FedServerKey) (*serverkey.Key, error) {
	path := filepath.Join(dir, FederationKeyFile)
	moved, err := f.db.MoveFedKeySeeds(ctx, func(id string, seed []byte) error {
		if curRow == nil || id != curRow.ID {
			return nil // a retired key's seed: only wiped
		}
		k, err := serverkey.FromSeed(seed)
		if err != nil || string(k.ID()) != id {
			return fmt.Errorf("stored seed of %s is damaged", id)
		}
		return serverkey.WriteKeyFile(path, k.MarshalPEM())
	})
	if errors.Is(err, storage.ErrCheckpointBusy) {
		f.log.Warn("federation: the old key seed may stay in the WAL until the next checkpoint", "err", err)
	} else if err != nil {
		return nil, fmt.Errorf("homeserver: move federation key out of the database: %w", err)
	}
	if moved > 0 {
		f.log.Info("federation: moved the private key out of the database", "file", path)
	}
	k, err := serverkey.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("homeserver: federation key: %w", err)
	}
	next, err := serverkey.ReadFile(filepath.Join(dir, nextKeyFile))
	if err != nil {
		return nil, fmt.Errorf("homeserver: federation key: %w", err)
	}
	switch {
	case curRow == nil && k == nil:
		// First start with a key folder: the start key becomes the file.
		if err := serverkey.WriteKeyFile(path, start.MarshalPEM()); err != nil {
			return nil, err
		}
		k = start
	case curRow == nil:
	case k != nil && string(k.ID()) == curRow.ID:
	case next != nil && string(next.ID()) == curRow.ID:
		if err := os.Rename(filepath.Join(dir, nextKeyFile), path); err != nil {
			return nil, fmt.Errorf("homeserver: finish federation key rotation: %w", err)
		}
		if err := serverkey.SyncDir(dir); err != nil {
			return nil, err
		}
		k, next = next, nil
	default:
		return nil, fmt.Errorf("homeserver: %s does not hold the current federation key %s", path, curRow.ID)
	}
	if next != nil { // a rotation that did not commit
		os.Remove(filepath.Join(dir, nextKeyFile))
	}
	return k, nil
}

// SigningKey is the key that signs outbound transactions and queries now.
func (f *Peers) SigningKey() *serverkey.Key {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.key
}

// keyDoc is this server's key document: the current key, valid for
// KeyValidity from now (a window peers re-fetch when it ends), and every
// retired key with the end of its validity.
func (f *Peers) keyDoc() *federation.KeyDocument {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	cur := f.curPub
	cur.ValidUntil = now.Add(f.cfg.KeyValidity) // peers fetch again when it ends
	pks := append([]serverkey.PublicKey{cur}, f.retired...)
	d := federation.NewKeyDocument(f.domain, f.cfg.Address, pks...)
	d.PublishedMs = now.UnixMilli()
	return d
}

// RefreshServerKeys re-fetches domain's key document from its pinned
// address (or by discovery when it is not pinned), because a request
// named keyID, which the cached keys do not hold, and stores it.
//
// A forged request can name any key id, so refreshes are bounded without
// letting forgeries hold back the refresh a real new key needs:
//
//   - a key id that a refresh did not find is remembered (per domain) for
//     KeyRefreshInterval; a request naming it again is refused at once
//     (ErrRefreshLimited, CODE_BAD_SIGNATURE) without a fetch;
//   - any other key id refreshes, at most once per KeyRefreshGap per
//     domain; within the gap the request is refused as temporary
//     (ErrRefreshSoon, CODE_UNAVAILABLE), so a real sender retries and
//     gets through a moment later instead of failing or waiting out a
//     long interval that a forgery started.
//
// Requests that need a refresh while one for the same domain is under way
// wait for it and share its outcome: several requests signed with a new
// key often arrive together (a message, typing and presence signals), and
// all but the first would otherwise be refused although the refresh that
// would admit them had not finished.
func (f *Peers) RefreshServerKeys(ctx context.Context, domain, keyID string) (*serverkey.Set, error) {
	now := f.now()
	f.mu.Lock()
	if c := f.refreshing[domain]; c != nil {
		f.mu.Unlock()
		select {
		case <-c.done:
			return c.set, c.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if at, ok := f.unknownIDs[domain+" "+keyID]; ok && now.Sub(at) < f.cfg.KeyRefreshInterval {
		f.mu.Unlock()
		return nil, fmt.Errorf("%w: key %s of %s was not in its document refreshed %s ago", federation.ErrRefreshLimited, keyID, domain, now.Sub(at).Round(time.Millisecond))
	}
	last, seen := f.refreshed[domain]
	if seen && now.Sub(last) < f.cfg.KeyRefreshGap {
		f.mu.Unlock()
		return nil, fmt.Errorf("%w (keys of %s were refreshed %s ago)", federation.ErrRefreshSoon, domain, now.Sub(last).Round(time.Millisecond))
	}
	f.refreshed[domain] = now
	c := &keyRefresh{done: make(chan struct{})}
	if f.refreshing == nil {
		f.refreshing = map[string]*keyRefresh{}
	}
	f.refreshing[domain] = c
	p, pinned := f.peers[domain]
	_, found := f.found[domain]
	pinned = pinned && !found
	f.mu.Unlock()
	c.set, c.err = f.refreshKeys(ctx, domain, p, pinned)
	f.mu.Lock()
	delete(f.refreshing, domain)
	if c.err == nil && c.set != nil && (!hasKey(c.set, keyID) || !c.set.Fresh(serverkey.ID(keyID), f.now())) {
		f.noteUnknownID(domain, keyID, now)
	}
	f.mu.Unlock()
	close(c.done)
	return c.set, c.err
}

func hasKey(set *serverkey.Set, id string) bool {
	for _, k := range set.Keys() {
		if string(k.ID) == id {
			return true
		}
	}
	return false
}

// noteUnknownID remembers a key id a refresh did not find; f.mu is held.
// The table is pruned of expired entries when large, and never holds more
// than maxUnknownIDs (then the oldest are forgotten first by pruning).
func (f *Peers) noteUnknownID(domain, keyID string, now time.Time) {
	if f.unknownIDs == nil {
		f.unknownIDs = map[string]time.Time{}
	}
	if len(f.unknownIDs) >= maxUnknownIDs {
		for k, at := range f.unknownIDs {
			if now.Sub(at) >= f.cfg.KeyRefreshInterval || len(f.unknownIDs) >= maxUnknownIDs {
				delete(f.unknownIDs, k)
			}
		}
	}
	f.unknownIDs[domain+" "+keyID] = now
}

const maxUnknownIDs = 4096

// keyRefresh is one refresh of a domain's keys under way.
type keyRefresh struct {
	done chan struct{}
	set  *serverkey.Set
	err  error
}

// refreshKeys fetches and stores domain's key document.
func (f *Peers) refreshKeys(ctx context.Context, domain string, p federation.Peer, pinned bool) (*serverkey.Set, error) {
	if !pinned {
		return f.discover(ctx, domain)
	}
	doc, err := federation.FetchKeyDocument(ctx, p)
	if err != nil {
		return nil, err
	}
	if _, _, err := federation.ParseKeyDocument(doc, domain); err != nil {
		return nil, err
	}
	var sp *storage.FedPeer
	err = f.db.Write(ctx, func(tx *storage.Tx) error {
		peers, err := tx.FedPeers()
		if err != nil {
			return err
		}
		for _, q := range peers {
			if q.Domain == domain {
				sp = q
			}
		}
		if sp == nil {
			return fmt.Errorf("peer %s was removed", domain)
		}
		sp.KeysJSON = doc
		return tx.PutFedPeer(sp)
	})
	if err != nil {
		return nil, fmt.Errorf("store keys of %s: %w", domain, err)
	}
	if err := f.cachePeer(sp, f.now()); err != nil {
		return nil, err
	}
	f.log.Info("federation: refreshed peer keys", "domain", domain)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.keys[domain], nil
}

// RotateKey makes a new federation signing key current. The old
// key stays published, valid until now+grace, so that what it signed stays
// verifiable; its private half is deleted (federation.key is replaced).
// Peers stop accepting it by now+max(grace, KeyValidity): the window they
// were given for it as the current key ends by then at the latest.
func (f *Peers) RotateKey(ctx context.Context, grace time.Duration) (admin.KeyRotation, error) {
	const op = "homeserver.FederationKeyRotate"
	if grace < 0 || grace > 30*24*time.Hour {
		return admin.KeyRotation{}, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "grace %s is outside 0..720h", grace)
	}
	dir := f.cfg.KeyDir
	if dir == "" {
		return admin.KeyRotation{}, wire.Errorf(op, wire.Code_CODE_UNAVAILABLE, "this server has no key folder to keep a new key in")
	}
	next, err := serverkey.Generate(f.rand)
	if err != nil {
		return admin.KeyRotation{}, wire.Internal(op, err)
	}
	f.rotMu.Lock()
	defer f.rotMu.Unlock()
	now := f.now()
	f.mu.Lock()
	oldPub := f.curPub
	f.mu.Unlock()
	old := &storage.FedServerKey{ID: string(oldPub.ID), Public: oldPub.Key}
	if !oldPub.ValidFrom.IsZero() {
		old.ValidFromMs = oldPub.ValidFrom.UnixMilli()
	}
	until := now.Add(grace)
	// The new key reaches its file before the database names it current;
	// a crash in between leaves federation.key.next, which the next start
	// renames (committed) or deletes (not committed).
	nextPath := filepath.Join(dir, nextKeyFile)
	if err := serverkey.WriteKeyFile(nextPath, next.MarshalPEM()); err != nil {
		return admin.KeyRotation{}, wire.Internal(op, err)
	}
	nk := &storage.FedServerKey{ID: string(next.ID()), Public: next.Public(), ValidFromMs: now.UnixMilli()}
	if err := f.db.Write(ctx, func(tx *storage.Tx) error { return tx.RotateFedServerKey(old, nk, until.UnixMilli()) }); err != nil {
		os.Remove(nextPath)
		return admin.KeyRotation{}, wire.Internal(op, err)
	}
	if err := os.Rename(nextPath, filepath.Join(dir, FederationKeyFile)); err != nil {
		return admin.KeyRotation{}, wire.Internal(op, err)
	}
	if err := serverkey.SyncDir(dir); err != nil {
		return admin.KeyRotation{}, wire.Internal(op, err)
	}
	oldPub.ValidUntil = until
	f.mu.Lock()
	f.key = next
	f.curPub = serverkey.PublicKey{ID: next.ID(), Key: next.Public(), ValidFrom: now}
	f.retired = append(f.retired, oldPub)
	f.mu.Unlock()
	f.log.Info("federation: signing key rotated", "new_key", next.ID(), "retired_key", oldPub.ID, "valid_until", until.UTC())
	return admin.KeyRotation{Current: string(next.ID()), Retired: string(oldPub.ID), RetiredUntilMs: until.UnixMilli()}, nil
}
