package store

import (
	"sort"
	"strings"
	"testing"
)

// recordStore is IndexedDB's part in these tests: records by key, changed
// by kvOps. The browser's IndexedDB itself is exercised by the web client's
// Chromium test (cmd/hearth/web_e2e_test.go).
type recordStore map[string][]byte

func (r recordStore) apply(ops []kvOp) {
	for _, op := range ops {
		switch {
		case op.Prefix:
			for k := range r {
				if strings.HasPrefix(k, op.Key) {
					delete(r, k)
				}
			}
		case op.Del:
			delete(r, op.Key)
		default:
			r[op.Key] = append([]byte{}, op.Val...)
		}
	}
}

func (r recordStore) reload(t *testing.T) *memDB {
	t.Helper()
	d := newMemDB()
	keys := make([]string, 0, len(r))
	for k := range r {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := d.load(k, r[k]); err != nil {
			t.Fatalf("reload: %v", err)
		}
	}
	return d
}
