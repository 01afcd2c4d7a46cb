//go:build js

package store

import "errors"

// In the browser the records live in the memkv.go tree, kept in IndexedDB.
type (
	kvTx     = memTx
	kvBucket = memBucket
)

var errBucketNotFound = errors.New("store: bucket not found")

// appending is a no-op in the browser: the memkv tree has no pages.
func appending(*kvBucket) {}

// keepTail is a no-op in the browser: the memkv tree has no pages.
func keepTail(*kvBucket, int) {}
