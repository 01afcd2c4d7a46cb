//go:build !js

package store

import bolt "go.etcd.io/bbolt"

// The records live in bbolt outside the browser.
type (
	kvTx     = bolt.Tx
	kvBucket = bolt.Bucket
)

var errBucketNotFound = bolt.ErrBucketNotFound
