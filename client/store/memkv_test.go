//go:build !js

package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// dump lists a tree's contents: every bucket with its sequence and every value.
func dumpMem(d *memDB) string {
	var sb strings.Builder
	var walk func(pre string, n *memNode)
	walk = func(pre string, n *memNode) {
		for _, k := range n.keys {
			if c := n.subs[k]; c != nil {
				fmt.Fprintf(&sb, "%s%q/ seq=%d\n", pre, k, c.seq)
				walk(pre+"  ", c)
			} else {
				fmt.Fprintf(&sb, "%s%q=%x\n", pre, k, n.vals[k])
			}
		}
	}
	walk("", d.root)
	return sb.String()
}

func dumpBolt(t *testing.T, db *bolt.DB) string {
	var sb strings.Builder
	var walk func(pre string, b *bolt.Bucket)
	walk = func(pre string, b *bolt.Bucket) {
		b.ForEach(func(k, v []byte) error {
			if v == nil {
				c := b.Bucket(k)
				fmt.Fprintf(&sb, "%s%q/ seq=%d\n", pre, k, c.Sequence())
				walk(pre+"  ", c)
			} else {
				fmt.Fprintf(&sb, "%s%q=%x\n", pre, k, v)
			}
			return nil
		})
	}
	if err := db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			fmt.Fprintf(&sb, "%q/ seq=%d\n", name, b.Sequence())
			walk("  ", b)
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return sb.String()
}

// kvOps is what both trees are driven with: the methods the store's
// records use, on either implementation.
type kvOps[B any] struct {
	bucket       func(B, []byte) B
	nilB         func(B) bool
	create       func(B, []byte) (B, error)
	deleteBucket func(B, []byte) error
	put          func(B, []byte, []byte) error
	del          func(B, []byte) error
	next         func(B) (uint64, error)
	walk         func(B, []byte, bool) []string // cursor from seek (nil: First/Last), forward or back
	cursorDelete func(B, []byte) error          // delete every key from seek on through the cursor
}

// randomTx runs n random operations; the same seed gives the same
// operations on both trees, so their results and final states must match.
func randomTx[B any](r *rand.Rand, ops kvOps[B], top B, n int) []string {
	var log []string
	name := func() []byte { return []byte{byte('a' + r.IntN(4))} }
	key := func() []byte { return []byte{byte(r.IntN(6)), byte(r.IntN(3))} }
	errs := func(err error) string {
		if err == nil {
			return "ok"
		}
		return "err"
	}
	b := top
	for range n {
		switch r.IntN(10) {
		case 0:
			if c := ops.bucket(top, name()); !ops.nilB(c) {
				b = c
			}
		case 1:
			c, err := ops.create(b, name())
			log = append(log, "create "+errs(err))
			if err == nil {
				b = c
			}
		case 2:
			if r.IntN(3) == 0 {
				log = append(log, "delbucket "+errs(ops.deleteBucket(top, name())))
				b = top
			}
		case 3, 4, 5:
			log = append(log, "put "+errs(ops.put(b, key(), []byte{byte(r.IntN(256))})))
		case 6:
			log = append(log, "del "+errs(ops.del(b, key())))
		case 7:
			s, err := ops.next(b)
			log = append(log, fmt.Sprintf("seq %d %s", s, errs(err)))
		case 8:
			var seek []byte
			if r.IntN(2) == 0 {
				seek = key()
			}
			log = append(log, strings.Join(ops.walk(b, seek, r.IntN(2) == 0), ","))
		case 9:
			if r.IntN(4) == 0 {
				log = append(log, "cdel "+errs(ops.cursorDelete(b, key())))
			}
		}
	}
	return log
}

func boltOps() kvOps[*bolt.Bucket] {
	return kvOps[*bolt.Bucket]{
		bucket:       (*bolt.Bucket).Bucket,
		nilB:         func(b *bolt.Bucket) bool { return b == nil },
		create:       (*bolt.Bucket).CreateBucket,
		deleteBucket: (*bolt.Bucket).DeleteBucket,
		put:          (*bolt.Bucket).Put,
		del:          (*bolt.Bucket).Delete,
		next:         (*bolt.Bucket).NextSequence,
		walk: func(b *bolt.Bucket, seek []byte, fwd bool) []string {
			c := b.Cursor()
			var out []string
			var k, v []byte
			switch {
			case seek != nil:
				k, v = c.Seek(seek)
			case fwd:
				k, v = c.First()
			default:
				k, v = c.Last()
			}
			for ; k != nil; k, v = step(c, fwd) {
				out = append(out, fmt.Sprintf("%x=%x", k, v))
			}
			return out
		},
		cursorDelete: func(b *bolt.Bucket, seek []byte) error {
			c := b.Cursor()
			for k, v := c.Seek(seek); k != nil; k, v = c.Seek(seek) {
				if v == nil {
					return nil
				}
				if err := c.Delete(); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

func step(c *bolt.Cursor, fwd bool) ([]byte, []byte) {
	if fwd {
		return c.Next()
	}
	return c.Prev()
}

func memOps() kvOps[*memBucket] {
	return kvOps[*memBucket]{
		bucket:       (*memBucket).Bucket,
		nilB:         func(b *memBucket) bool { return b == nil },
		create:       (*memBucket).CreateBucket,
		deleteBucket: (*memBucket).DeleteBucket,
		put:          (*memBucket).Put,
		del:          (*memBucket).Delete,
		next:         (*memBucket).NextSequence,
		walk: func(b *memBucket, seek []byte, fwd bool) []string {
			c := b.Cursor()
			var out []string
			var k, v []byte
			switch {
			case seek != nil:
				k, v = c.Seek(seek)
			case fwd:
				k, v = c.First()
			default:
				k, v = c.Last()
			}
			for k != nil {
				out = append(out, fmt.Sprintf("%x=%x", k, v))
				if fwd {
					k, v = c.Next()
				} else {
					k, v = c.Prev()
				}
			}
			return out
		},
		cursorDelete: func(b *memBucket, seek []byte) error {
			c := b.Cursor()
			for k, v := c.Seek(seek); k != nil; k, v = c.Seek(seek) {
				if v == nil {
					return nil
				}
				if err := c.Delete(); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

var errAbort = errors.New("abort")

// TestMemKVMatchesBolt drives bbolt and the browser's record tree with the
// same random transactions (some aborted) and checks after each that both
// answered alike and hold the same buckets, values and sequences, and that
// the records the tree wrote, reloaded, give the same tree again.
func TestMemKVMatchesBolt(t *testing.T) {
	bdb, err := bolt.Open(filepath.Join(t.TempDir(), "x.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	mdb := newMemDB()
	recs := recordStore{}
	tops := [][]byte{[]byte("one"), []byte("two")}
	for seed := range uint64(300) {
		abort := seed%7 == 3
		var blog, mlog []string
		berr := bdb.Update(func(tx *bolt.Tx) error {
			r := rand.New(rand.NewPCG(seed, 1))
			top, err := tx.CreateBucketIfNotExists(tops[seed%2])
			if err != nil {
				return err
			}
			blog = randomTx(r, boltOps(), top, 40)
			if abort {
				return errAbort
			}
			return nil
		})
		merr := mdb.update(func(tx *memTx) error {
			r := rand.New(rand.NewPCG(seed, 1))
			top, err := tx.CreateBucketIfNotExists(tops[seed%2])
			if err != nil {
				return err
			}
			mlog = randomTx(r, memOps(), top, 40)
			if abort {
				return errAbort
			}
			return nil
		}, func(ops []kvOp) error { recs.apply(ops); return nil })
		if !errors.Is(berr, errAbort) && berr != nil || !errors.Is(merr, berr) {
			t.Fatalf("seed %d: bolt %v, mem %v", seed, berr, merr)
		}
		if strings.Join(blog, "\n") != strings.Join(mlog, "\n") {
			t.Fatalf("seed %d: answers differ\nbolt:\n%s\nmem:\n%s", seed, strings.Join(blog, "\n"), strings.Join(mlog, "\n"))
		}
		want := dumpBolt(t, bdb)
		if got := dumpMem(mdb); got != want {
			t.Fatalf("seed %d: trees differ\nbolt:\n%s\nmem:\n%s", seed, want, got)
		}
		if got := dumpMem(recs.reload(t)); got != want {
			t.Fatalf("seed %d: stored records differ\nbolt:\n%s\nreloaded:\n%s", seed, want, got)
		}
	}
}

// TestMemKVFailedCommit: a commit that fails (IndexedDB refused the
// transaction) leaves the tree as it was, and a read-only transaction
// cannot write.
func TestMemKVFailedCommit(t *testing.T) {
	d := newMemDB()
	put := func(v string) error {
		return d.update(func(tx *memTx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			return b.Put([]byte("k"), []byte(v))
		}, func([]kvOp) error {
			if v == "fail" {
				return errors.New("quota exceeded")
			}
			return nil
		})
	}
	if err := put("first"); err != nil {
		t.Fatal(err)
	}
	if err := put("fail"); err == nil {
		t.Fatal("failed commit returned nil")
	}
	d.view(func(tx *memTx) error {
		if v := tx.Bucket([]byte("b")).Get([]byte("k")); !bytes.Equal(v, []byte("first")) {
			t.Errorf("after a failed commit k = %q, want first", v)
		}
		if err := tx.Bucket([]byte("b")).Put([]byte("k"), []byte("x")); err == nil {
			t.Error("Put in a read-only transaction succeeded")
		}
		return nil
	})
}

// TestMemKVLoadRejects: records that are not the store's are refused with
// an error, not loaded half.
func TestMemKVLoadRejects(t *testing.T) {
	for _, k := range []string{"", "x", "k:00", "b/zz", "k/61:", "k/61:zz", "k/:61", "b"} {
		d := newMemDB()
		if err := d.load(k, make([]byte, 8)); err == nil {
			t.Errorf("load(%q) accepted", k)
		}
	}
}

// FuzzMemKVLoad: records read back from IndexedDB (which other code of
// the origin could have written) never make load panic, and what load
// accepts is a consistent tree: reading every bucket and value works.
func FuzzMemKVLoad(f *testing.F) {
	f.Add("b/6f6e65", []byte{0, 0, 0, 0, 0, 0, 0, 3})
	f.Add("k/6f6e65:0102", []byte("v"))
	f.Add("k/6f6e65/74776f:ff", []byte{})
	f.Add("k/6f6e65", []byte("v"))
	f.Add("b/", []byte{1})
	f.Fuzz(func(t *testing.T, key string, val []byte) {
		d := newMemDB()
		if err := d.load("b/6f6e65", make([]byte, 8)); err != nil {
			t.Fatal(err)
		}
		if err := d.load(key, val); err != nil {
			return
		}
		dumpMem(d)
		recs := recordStore{}
		err := d.update(func(tx *memTx) error {
			b := tx.Bucket([]byte("one"))
			if b == nil {
				return errors.New("bucket one lost")
			}
			_, err := b.NextSequence()
			return err
		}, func(ops []kvOp) error { recs.apply(ops); return nil })
		if err != nil {
			t.Fatal(err)
		}
	})
}
