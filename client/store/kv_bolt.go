//go:build !js

package store

import bolt "go.etcd.io/bbolt"

// The records live in bbolt outside the browser.
type (
	kvTx     = bolt.Tx
	kvBucket = bolt.Bucket
)

var errBucketNotFound = bolt.ErrBucketNotFound

// appending marks b, in this transaction, as filled at its end (keys
// that grow: a conversation's history by seq, the inbox by position):
// bbolt then fills each page before it splits it instead of leaving half
// of it free. A put materialises every page on its key's path (the
// branch pages' elements included), so half as many leaves mean half as
// many branch elements decoded per message.
func appending(b *kvBucket) { b.FillPercent = 1.0 }
