package e2ee

import (
	"bytes"
	"hash/maphash"
	"sync"
)

// The group cache. Restoring an MLS state is expensive (parsing the tree
// and re-deriving the hybrid KEM private keys), and handling one message
// loads its conversation's state three or four times. The client therefore
// wraps its Engine (Cache.Wrap): a Group restored by Load or saved with Marshal is kept
// with its serialized state, and a later Load of exactly those bytes gets
// the parsed object back instead of parsing them again. Entries are found
// by a hash of the state (maphash: a lookup, not a proof) and a hit is
// the same bytes (bytes.Equal), so a state saved in one transaction costs
// no cryptographic hash when it is loaded in the next.
//
// The store stays the truth: every Load still reads the state from the
// store, and only an object whose own Marshal produced exactly those bytes
// (and that was not changed since) is reused. A state saved by another
// process, or by a transaction that was rolled back, has other bytes and is
// parsed. An object is handed to one holder at a time (checked out); it
// becomes available again when its holder saves it (Marshal) or, for
// read-only use, when the holder releases it (Cache.Release). An object
// that is changed after its last Marshal (Encrypt, Process, ...) is not
// reused under the old bytes.
//
// States are saved split (Group.MarshalSplit): their bytes name each
// ratchet tree by its SHA-256, so equal state bytes mean equal trees, and
// a cache hit reads no tree from the store.

// Cache bounds, counted in serialized bytes: a group's state plus the
// ratchet trees it refers to (see Group.MarshalSplit). A group
// larger than cacheMaxState is never kept, and at most cacheMaxBytes per
// Cache. A 1,024-member group on the hybrid suite (1.4 MB of tree, about
// 4.5 MB while a commit is pending: two trees and a GroupInfo carrying
// one) stays cached; the 1,023 simulated devices of the group benchmark
// then hold one each.
const (
	cacheMaxState = 6 << 20
	cacheMaxBytes = 8 << 20
)

type stateKey uint64

// stateSeed seeds the lookup hash of states (stateKeyOf).
var stateSeed = maphash.MakeSeed()

func stateKeyOf(state []byte) stateKey { return stateKey(maphash.Bytes(stateSeed, state)) }

// Cache holds parsed groups by state hash.
type Cache struct {
	mu      sync.Mutex
	entries map[stateKey]*cachedGroup
	bytes   int
	hits    int // counters for tests and benchmarks
	misses  int
}

// NewCache returns an empty cache.
func NewCache() *Cache { return &Cache{entries: map[stateKey]*cachedGroup{}} }

// Wrap returns e with Load served from the cache.
func (gc *Cache) Wrap(e Engine) Engine { return &cachingEngine{Engine: e, cache: gc} }

// cachedGroup wraps an engine's Group. Its methods forward to the inner
// group; the changing ones count changes.
type cachedGroup struct {
	inner Group
	fwd   *fwdValidator
	cache *Cache

	// guarded by cache.mu
	key     stateKey // lookup hash of state, when cached
	state   []byte   // the serialized state it was cached under (not modified)
	keyed   bool
	size    int
	changes uint64 // number of changing calls so far
	savedAt uint64 // changes at the last Marshal
	held    bool   // checked out by a Load
}

// fwdValidator lets a cached group check members with its current holder's
// validator (which carries that holder's transaction).
type fwdValidator struct{ v CredentialValidator }

func (f *fwdValidator) ValidateMember(id, key []byte) error { return f.v.ValidateMember(id, key) }
func (f *fwdValidator) PrefetchMembers(identities [][]byte) { f.v.PrefetchMembers(identities) }

// checkout returns the cached group for state (whose key is k), or nil.
func (gc *Cache) checkout(k stateKey, state []byte, v CredentialValidator) *cachedGroup {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	e := gc.entries[k]
	if e == nil || e.held || e.changes != e.savedAt || !bytes.Equal(e.state, state) {
		gc.misses++
		return nil
	}
	gc.hits++
	e.held = true
	e.fwd.v = v
	return e
}

// add caches g as the parsed form of state, whose key is k; state must
// not be modified afterwards.
func (gc *Cache) add(g *cachedGroup, k stateKey, state []byte, size int, held bool) {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	gc.dropLocked(g)
	if size > cacheMaxState {
		return
	}
	if old := gc.entries[k]; old != nil {
		gc.dropLocked(old)
	}
	for gc.bytes+size > cacheMaxBytes && len(gc.entries) > 0 {
		for _, e := range gc.entries { // any: the cache holds a few conversations
			gc.dropLocked(e)
			break
		}
	}
	g.key, g.state, g.keyed, g.size, g.savedAt, g.held = k, state, true, size, g.changes, held
	gc.entries[k] = g
	gc.bytes += size
}

func (gc *Cache) dropLocked(g *cachedGroup) {
	if g.keyed && gc.entries[g.key] == g {
		delete(gc.entries, g.key)
		gc.bytes -= g.size
	}
	g.keyed, g.state = false, nil
}

// Release ends a read-only checkout: g is available again unless it changed.
func (gc *Cache) Release(g Group) {
	cg, ok := g.(*cachedGroup)
	if !ok {
		return
	}
	gc.mu.Lock()
	defer gc.mu.Unlock()
	cg.held = false
}

// Stats returns cache hits and misses (tests, benchmarks).
func (gc *Cache) Stats() (hits, misses int) {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	return gc.hits, gc.misses
}

func (g *cachedGroup) changed() {
	g.cache.mu.Lock()
	g.changes++
	g.cache.mu.Unlock()
}

func (g *cachedGroup) Epoch() uint64              { return g.inner.Epoch() }
func (g *cachedGroup) Members() []string          { return g.inner.Members() }
func (g *cachedGroup) GroupInfo() ([]byte, error) { return g.inner.GroupInfo() }

func (g *cachedGroup) Encrypt(pt []byte) ([]byte, error) {
	g.changed()
	return g.inner.Encrypt(pt)
}

func (g *cachedGroup) Process(msg []byte) (Received, error) {
	g.changed()
	return g.inner.Process(msg)
}

func (g *cachedGroup) Commit(kps [][]byte, remove []string) (Commit, error) {
	g.changed()
	return g.inner.Commit(kps, remove)
}

func (g *cachedGroup) MergeCommit() error {
	g.changed()
	return g.inner.MergeCommit()
}

func (g *cachedGroup) DiscardCommit() {
	g.changed()
	g.inner.DiscardCommit()
}

// Marshal returns the whole state (not what the client stores; see
// MarshalSplit).
func (g *cachedGroup) Marshal() ([]byte, error) { return g.inner.Marshal() }

// MarshalSplit serializes the state and caches this object under it: the
// state names its trees by hash, so equal state bytes mean equal trees.
func (g *cachedGroup) MarshalSplit() ([]byte, map[string][]byte, error) {
	b, trees, err := g.inner.MarshalSplit()
	if err != nil {
		return nil, nil, err
	}
	size := 2 * len(b) // the encoding and the copy kept with the entry
	for _, t := range trees {
		size += len(t)
	}
	// Kept by reference: the caller stores b and does not modify it.
	g.cache.add(g, stateKeyOf(b), b, size, false)
	return b, trees, nil
}

func (g *cachedGroup) AdminKey() []byte           { return g.inner.AdminKey() }
func (g *cachedGroup) EpochAuthenticator() []byte { return g.inner.EpochAuthenticator() }

func (g *cachedGroup) CommitAdmin(req AdminCommit) (Commit, error) {
	g.changed()
	return g.inner.CommitAdmin(req)
}

func (g *cachedGroup) SealTo(member, label string, context, pt []byte) ([]byte, error) {
	g.changed() // conservatively: it may use randomness held in the state
	return g.inner.SealTo(member, label, context, pt)
}

func (g *cachedGroup) OpenSealed(label string, context, ct []byte) ([]byte, error) {
	g.changed()
	return g.inner.OpenSealed(label, context, ct)
}

// cachingEngine is an Engine with Load served from the cache. Groups it creates or joins are cached
// once they are saved.
type cachingEngine struct {
	Engine
	cache *Cache
}

var (
	_ Engine = (*cachingEngine)(nil)
	_ Group  = (*cachedGroup)(nil)
)

// Load returns the cached group whose last MarshalSplit produced state
// without reading any tree, or restores state with the engine.
func (e *cachingEngine) Load(state []byte, tree func(ref []byte) ([]byte, error), self Self, v CredentialValidator) (Group, error) {
	k := stateKeyOf(state)
	if g := e.cache.checkout(k, state, v); g != nil {
		return g, nil
	}
	size := 2 * len(state)
	counted := func(ref []byte) ([]byte, error) {
		b, err := tree(ref)
		size += len(b)
		return b, err
	}
	fwd := &fwdValidator{v: v}
	inner, err := e.Engine.Load(state, counted, self, fwd)
	if err != nil {
		return nil, err
	}
	g := &cachedGroup{inner: inner, fwd: fwd, cache: e.cache}
	// A copy: state may be the store's memory, valid only in its transaction.
	e.cache.add(g, k, bytes.Clone(state), size, true)
	return g, nil
}
