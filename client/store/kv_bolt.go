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

// keepTail makes bbolt split b's full leaves, in this transaction, so
// that a value of size bytes that follows the keys being appended stays
// on the newest page with at least one of them: the left page of a split
// is filled up to a page less that value and a little room, instead of
// as full as FillPercent 1.0 would (which leaves the last key alone on
// the right page whenever it is larger than the keys appended: every
// later append would then rewrite two leaves).
func keepTail(b *kvBucket, size int) {
	ps := b.Tx().DB().Info().PageSize
	fill := float64(ps-size-tailRoom) / float64(ps)
	b.FillPercent = min(max(fill, 0.5), 1.0)
}

// tailRoom is how many bytes of messages keepTail keeps on the newest
// page beside the value that follows them.
const tailRoom = 128
