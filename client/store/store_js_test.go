//go:build js

package store

import (
	"bytes"
	"errors"
	"sort"
	"sync"
	"syscall/js"
	"testing"
	"time"
)

// Under GOOS=js the store's tests run in Node.js (go test -exec
// go_js_wasm_exec, see .ci/run), which has no IndexedDB: the records then
// go to fakeIDB, a Go stand-in that keeps each profile's records by key as
// IndexedDB would (recordStore). The browser's IndexedDB itself is
// exercised by the web client's Chromium test (cmd/hearth/web_e2e_test.go).
func init() {
	if js.Global().Get("indexedDB").Truthy() {
		return
	}
	openPersister = func(name string, _ time.Duration) (persister, []idbRecord, error) {
		fakeIDBs.mu.Lock()
		defer fakeIDBs.mu.Unlock()
		r, ok := fakeIDBs.dbs[name]
		if !ok {
			r = recordStore{}
			fakeIDBs.dbs[name] = r
		}
		keys := make([]string, 0, len(r))
		for k := range r {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		recs := make([]idbRecord, len(keys))
		for i, k := range keys {
			recs[i] = idbRecord{key: k, val: append([]byte{}, r[k]...)}
		}
		return &fakeIDB{name: name}, recs, nil
	}
}

// fakeIDBs are the profiles' records, by database name.
var fakeIDBs = struct {
	mu  sync.Mutex
	dbs map[string]recordStore
}{dbs: map[string]recordStore{}}

type fakeIDB struct{ name string }

func (f *fakeIDB) write(ops []kvOp) error {
	fakeIDBs.mu.Lock()
	defer fakeIDBs.mu.Unlock()
	r, ok := fakeIDBs.dbs[f.name]
	if !ok {
		return errors.New("fake IndexedDB: the database was deleted")
	}
	r.apply(ops)
	return nil
}

func (f *fakeIDB) wipe(name string) error {
	fakeIDBs.mu.Lock()
	defer fakeIDBs.mu.Unlock()
	delete(fakeIDBs.dbs, name)
	return nil
}

// sharedProfiles: the browser's store is one per profile (each Store
// holds the records in memory; the web client's worker takes a Web Lock so
// that a second tab does not open it), so tests of two Stores on one
// profile are left out.
const sharedProfiles = false

// rawProfile is what the profile named dir stores, as an attacker reading
// the browser's IndexedDB would see it: every record's key and value.
func rawProfile(t *testing.T, dir string) []byte {
	t.Helper()
	fakeIDBs.mu.Lock()
	defer fakeIDBs.mu.Unlock()
	r, ok := fakeIDBs.dbs[dir]
	if !ok {
		t.Fatalf("no profile %s", dir)
	}
	keys := make([]string, 0, len(r))
	for k := range r {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for _, k := range keys {
		b.WriteString(k)
		b.Write(r[k])
	}
	return b.Bytes()
}
