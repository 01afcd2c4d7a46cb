package keydir

import "testing"

// TestListCacheRefusesOverlappingRead: a read that overlapped a list write
// is not cached, and putList outside listCache.write is refused.
func TestListCacheRefusesOverlappingRead(t *testing.T) {
	c := newListCache()
	gen := c.generation()
	c.begin("alice")
	c.put(gen, map[string]cachedList{"alice": {}})
	if _, ok := c.get("alice"); ok {
		t.Fatal("a read started before a write was cached during it")
	}
	gen = c.generation()
	c.put(gen, map[string]cachedList{"bob": {}})
	if _, ok := c.get("bob"); ok {
		t.Fatal("a read was cached while a list write was in flight")
	}
	c.end("alice")
	c.put(gen, map[string]cachedList{"bob": {}})
	if _, ok := c.get("bob"); ok {
		t.Fatal("a read that overlapped a finished write was cached")
	}
	c.put(c.generation(), map[string]cachedList{"bob": {}})
	if _, ok := c.get("bob"); !ok {
		t.Fatal("a quiet read was not cached")
	}
	if c.inWrite("alice") {
		t.Fatal("alice still marked as written")
	}
}
