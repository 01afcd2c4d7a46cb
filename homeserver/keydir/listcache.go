package keydir

import (
	"context"
	"sync"

	"hearth/homeserver/wire"
	"hearth/storage"
)

// The device-list cache. A big group's joiners each ask for every
// member's signed list (FetchDeviceLists), so list reads come in bursts
// of hundreds of thousands; answering them from the database occupied the
// read pool and queued every other request behind them. Local users'
// identity keys and signed lists are therefore kept in memory.
//
// The database stays the truth. Every write of a user's list or identity
// key runs through write, which marks the user as being written for
// the duration of the write (until commit) and drops the user's entry
// before and after. A reader fills the cache only when no list write was
// in flight or finished while it read (the generation did not move), so a
// value read before a commit is never stored after it.

// maxCachedLists bounds the cache; when full, an arbitrary entry goes.
const maxCachedLists = 100_000

type cachedList struct {
	idKey []byte
	list  *storage.SignedList
}

type listCache struct {
	mu      sync.Mutex
	gen     uint64
	writing map[string]int // user -> writes in flight
	m       map[string]cachedList
}

func newListCache() *listCache {
	return &listCache{writing: map[string]int{}, m: map[string]cachedList{}}
}

// get returns the cached entry for a local user name.
func (c *listCache) get(user string) (cachedList, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[user]
	return e, ok
}

// generation returns the value a reader passes to put.
func (c *listCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// put stores what a reader read, unless a list write overlapped the read.
func (c *listCache) put(gen uint64, entries map[string]cachedList) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || len(c.writing) > 0 {
		return
	}
	for user, e := range entries {
		if len(c.m) >= maxCachedLists {
			for k := range c.m {
				delete(c.m, k)
				break
			}
		}
		c.m[user] = e
	}
}

// begin and end bracket a write of user's list or identity key.
func (c *listCache) begin(user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.writing[user]++
	delete(c.m, user)
}

func (c *listCache) end(user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if c.writing[user]--; c.writing[user] <= 0 {
		delete(c.writing, user)
	}
	delete(c.m, user)
}

// inWrite reports whether user's list write is bracketed (putList checks
// it so that a new write path cannot bypass the cache).
func (c *listCache) inWrite(user string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writing[user] > 0
}

func listResult(user string, e cachedList) *wire.DeviceListResult {
	return &wire.DeviceListResult{User: user, IdentityKey: e.idKey,
		DeviceList: &wire.SignedDeviceList{List: e.list.List, Signature: e.list.Signature}}
}

// write runs a database write that may change user's signed list or
// identity key (or delete the user), keeping the list cache coherent.
func (c *listCache) write(ctx context.Context, db *storage.DB, user string, fn func(*storage.Tx) error) error {
	c.begin(user)
	defer c.end(user)
	return db.Write(ctx, fn)
}

// Cached reports whether the list of local user name is in the cache.
func (s *Directory) Cached(name string) bool {
	_, ok := s.lists.get(name)
	return ok
}
