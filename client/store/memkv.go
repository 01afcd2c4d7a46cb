package store

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// The browser's store (store_js.go) keeps the profile's records in memory
// in the same shape bbolt gives them (nested buckets of sorted keys, a
// sequence per bucket) and writes every committed transaction's changes to
// IndexedDB before Update returns. This file is that record tree and its
// transactions; it has no build tag so that its tests run everywhere.
//
// Each record is stored in IndexedDB under a string key:
//
//	"b" + P           a bucket; the value is its sequence (8 bytes, big endian)
//	"k" + P + ":" + hex(key)   a value in the bucket at P
//
// where P is "/" + hex(name) for each bucket name on the path from the top.
// Hex keeps the keys' order within a bucket and makes a bucket's records one
// key range, so deleting a bucket is a few range deletions.

// Errors of the record tree, as bbolt words them.
var (
	errMemReadOnly    = errors.New("store: write in a read-only transaction")
	errMemBucketExist = errors.New("store: bucket already exists")
	errMemIncompat    = errors.New("store: incompatible value (a bucket where a value is expected, or the reverse)")
	errMemKeyRequired = errors.New("store: key required")
)

// memNode is one bucket's contents.
type memNode struct {
	parent *memNode
	name   string
	keys   []string // sorted: the values' and the sub-buckets' keys
	vals   map[string][]byte
	subs   map[string]*memNode
	seq    uint64
}

func newMemNode(parent *memNode, name string) *memNode {
	return &memNode{parent: parent, name: name, vals: map[string][]byte{}, subs: map[string]*memNode{}}
}

// path is the node's encoded path P (see above); "" for the top.
func (n *memNode) path() string {
	if n.parent == nil {
		return ""
	}
	return n.parent.path() + "/" + hex.EncodeToString([]byte(n.name))
}

// attached reports whether the node is still reachable from the top (a
// deleted bucket's node is not).
func (n *memNode) attached(root *memNode) bool {
	for ; n.parent != nil; n = n.parent {
		if n.parent.subs[n.name] != n {
			return false
		}
	}
	return n == root
}

func (n *memNode) insertKey(k string) {
	i := sort.SearchStrings(n.keys, k)
	if i < len(n.keys) && n.keys[i] == k {
		return
	}
	n.keys = append(n.keys, "")
	copy(n.keys[i+1:], n.keys[i:])
	n.keys[i] = k
}

func (n *memNode) removeKey(k string) {
	i := sort.SearchStrings(n.keys, k)
	if i < len(n.keys) && n.keys[i] == k {
		n.keys = append(n.keys[:i], n.keys[i+1:]...)
	}
}

// memDB is the record tree of one profile.
type memDB struct {
	root *memNode
}

func newMemDB() *memDB { return &memDB{root: newMemNode(nil, "")} }

// kvOp is one change to the stored records: a put of Key, a delete of Key,
// or (Prefix) a delete of every key starting with Key.
type kvOp struct {
	Key    string
	Val    []byte
	Del    bool
	Prefix bool
}

// memTx is a transaction on a memDB. A write transaction records how to
// undo each change (for a fn that fails, or a commit that fails) and which
// records it touched (for the commit's kvOps).
type memTx struct {
	db       *memDB
	writable bool
	undo     []func()
	dirty    map[*memNode]map[string]bool // values touched, by bucket
	marks    map[*memNode]bool            // buckets created or whose sequence changed
	dropped  []string                     // paths of buckets deleted, in order
}

// view runs fn in a read-only transaction.
func (d *memDB) view(fn func(*memTx) error) error {
	return fn(&memTx{db: d})
}

// update runs fn in a write transaction; when fn succeeds, persist gets
// the transaction's changes and the changes stay only if it succeeds too.
// Otherwise they are undone and the error returned.
func (d *memDB) update(fn func(*memTx) error, persist func([]kvOp) error) error {
	tx := &memTx{db: d, writable: true, dirty: map[*memNode]map[string]bool{}, marks: map[*memNode]bool{}}
	if err := fn(tx); err != nil {
		tx.rollback()
		return err
	}
	if ops := tx.ops(); len(ops) > 0 && persist != nil {
		if err := persist(ops); err != nil {
			tx.rollback()
			return err
		}
	}
	return nil
}

func (tx *memTx) rollback() {
	for i := len(tx.undo) - 1; i >= 0; i-- {
		tx.undo[i]()
	}
	tx.undo = nil
}

// ops lists the records to write: deleted buckets' ranges first, then the
// final state of every bucket mark and value touched.
func (tx *memTx) ops() []kvOp {
	var ops []kvOp
	for _, p := range tx.dropped {
		ops = append(ops, kvOp{Key: "b" + p, Del: true}, kvOp{Key: "b" + p + "/", Del: true, Prefix: true},
			kvOp{Key: "k" + p + ":", Del: true, Prefix: true}, kvOp{Key: "k" + p + "/", Del: true, Prefix: true})
	}
	root := tx.db.root
	for n := range tx.marks {
		if n.attached(root) {
			ops = append(ops, kvOp{Key: "b" + n.path(), Val: binary.BigEndian.AppendUint64(nil, n.seq)})
		}
	}
	for n, keys := range tx.dirty {
		live := n.attached(root)
		p := n.path()
		for k := range keys {
			key := "k" + p + ":" + hex.EncodeToString([]byte(k))
			if v, ok := n.vals[k]; ok && live {
				ops = append(ops, kvOp{Key: key, Val: v})
			} else if live {
				ops = append(ops, kvOp{Key: key, Del: true})
			}
		}
	}
	return ops
}

func (tx *memTx) touch(n *memNode, k string) {
	m := tx.dirty[n]
	if m == nil {
		m = map[string]bool{}
		tx.dirty[n] = m
	}
	m[k] = true
}

// Bucket returns the top-level bucket name, or nil.
func (tx *memTx) Bucket(name []byte) *memBucket {
	return (&memBucket{tx: tx, n: tx.db.root}).Bucket(name)
}

// CreateBucket creates the top-level bucket name.
func (tx *memTx) CreateBucket(name []byte) (*memBucket, error) {
	return (&memBucket{tx: tx, n: tx.db.root}).CreateBucket(name)
}

// CreateBucketIfNotExists returns the top-level bucket name, creating it if needed.
func (tx *memTx) CreateBucketIfNotExists(name []byte) (*memBucket, error) {
	return (&memBucket{tx: tx, n: tx.db.root}).CreateBucketIfNotExists(name)
}

// DeleteBucket deletes the top-level bucket name and everything in it.
func (tx *memTx) DeleteBucket(name []byte) error {
	return (&memBucket{tx: tx, n: tx.db.root}).DeleteBucket(name)
}

// memBucket is a bucket as one transaction sees it.
type memBucket struct {
	tx *memTx
	n  *memNode
}

// Bucket returns the nested bucket name, or nil.
func (b *memBucket) Bucket(name []byte) *memBucket {
	if n := b.n.subs[string(name)]; n != nil {
		return &memBucket{tx: b.tx, n: n}
	}
	return nil
}

// CreateBucket creates the nested bucket name.
func (b *memBucket) CreateBucket(name []byte) (*memBucket, error) {
	if !b.tx.writable {
		return nil, errMemReadOnly
	}
	if len(name) == 0 {
		return nil, errMemKeyRequired
	}
	k := string(name)
	if _, ok := b.n.subs[k]; ok {
		return nil, errMemBucketExist
	}
	if _, ok := b.n.vals[k]; ok {
		return nil, errMemIncompat
	}
	n := newMemNode(b.n, k)
	b.n.subs[k] = n
	b.n.insertKey(k)
	b.tx.marks[n] = true
	parent := b.n
	b.tx.undo = append(b.tx.undo, func() {
		delete(parent.subs, k)
		parent.removeKey(k)
	})
	return &memBucket{tx: b.tx, n: n}, nil
}

// CreateBucketIfNotExists returns the nested bucket name, creating it if needed.
func (b *memBucket) CreateBucketIfNotExists(name []byte) (*memBucket, error) {
	if c := b.Bucket(name); c != nil {
		return c, nil
	}
	return b.CreateBucket(name)
}

// DeleteBucket deletes the nested bucket name and everything in it.
func (b *memBucket) DeleteBucket(name []byte) error {
	if !b.tx.writable {
		return errMemReadOnly
	}
	k := string(name)
	n := b.n.subs[k]
	if n == nil {
		if _, ok := b.n.vals[k]; ok {
			return errMemIncompat
		}
		return errBucketNotFound
	}
	b.tx.dropped = append(b.tx.dropped, n.path())
	delete(b.n.subs, k)
	b.n.removeKey(k)
	parent := b.n
	b.tx.undo = append(b.tx.undo, func() {
		parent.subs[k] = n
		parent.insertKey(k)
	})
	return nil
}

// Get returns the value of key, or nil (also for a nested bucket's key).
func (b *memBucket) Get(key []byte) []byte { return b.n.vals[string(key)] }

// Put sets key to a copy of value.
func (b *memBucket) Put(key, value []byte) error {
	if !b.tx.writable {
		return errMemReadOnly
	}
	if len(key) == 0 {
		return errMemKeyRequired
	}
	k := string(key)
	if _, ok := b.n.subs[k]; ok {
		return errMemIncompat
	}
	old, had := b.n.vals[k]
	v := append(make([]byte, 0, len(value)), value...)
	b.n.vals[k] = v
	b.n.insertKey(k)
	b.tx.touch(b.n, k)
	n := b.n
	b.tx.undo = append(b.tx.undo, func() {
		if had {
			n.vals[k] = old
			return
		}
		delete(n.vals, k)
		n.removeKey(k)
	})
	return nil
}

// Delete removes key; a missing key is no error.
func (b *memBucket) Delete(key []byte) error {
	if !b.tx.writable {
		return errMemReadOnly
	}
	k := string(key)
	if _, ok := b.n.subs[k]; ok {
		return errMemIncompat
	}
	old, had := b.n.vals[k]
	if !had {
		return nil
	}
	delete(b.n.vals, k)
	b.n.removeKey(k)
	b.tx.touch(b.n, k)
	n := b.n
	b.tx.undo = append(b.tx.undo, func() {
		n.vals[k] = old
		n.insertKey(k)
	})
	return nil
}

// Sequence is the bucket's sequence number.
func (b *memBucket) Sequence() uint64 { return b.n.seq }

// NextSequence increments the bucket's sequence and returns it.
func (b *memBucket) NextSequence() (uint64, error) {
	if !b.tx.writable {
		return 0, errMemReadOnly
	}
	n := b.n
	old := n.seq
	n.seq++
	b.tx.marks[n] = true
	b.tx.undo = append(b.tx.undo, func() { n.seq = old })
	return n.seq, nil
}

// ForEach calls fn for every key in order; v is nil for a nested bucket.
func (b *memBucket) ForEach(fn func(k, v []byte) error) error {
	keys := append([]string(nil), b.n.keys...)
	for _, k := range keys {
		if err := fn([]byte(k), b.n.vals[k]); err != nil {
			return err
		}
	}
	return nil
}

// Cursor walks the bucket's keys in order.
func (b *memBucket) Cursor() *memCursor { return &memCursor{b: b} }

// memCursor is a position in a bucket. It remembers the key it is at, so
// that changes to the bucket while it walks (Delete) do not make it skip.
type memCursor struct {
	b   *memBucket
	at  string
	set bool
}

func (c *memCursor) pick(i int) ([]byte, []byte) {
	keys := c.b.n.keys
	if i < 0 || i >= len(keys) {
		c.set = false
		return nil, nil
	}
	c.at, c.set = keys[i], true
	return []byte(c.at), c.b.n.vals[c.at]
}

// First moves to the first key.
func (c *memCursor) First() ([]byte, []byte) { return c.pick(0) }

// Last moves to the last key.
func (c *memCursor) Last() ([]byte, []byte) { return c.pick(len(c.b.n.keys) - 1) }

// Seek moves to the first key at or after seek.
func (c *memCursor) Seek(seek []byte) ([]byte, []byte) {
	return c.pick(sort.SearchStrings(c.b.n.keys, string(seek)))
}

// Next moves to the key after the current one.
func (c *memCursor) Next() ([]byte, []byte) {
	if !c.set {
		return nil, nil
	}
	keys := c.b.n.keys
	i := sort.SearchStrings(keys, c.at)
	if i < len(keys) && keys[i] == c.at {
		i++
	}
	return c.pick(i)
}

// Prev moves to the key before the current one.
func (c *memCursor) Prev() ([]byte, []byte) {
	if !c.set {
		return nil, nil
	}
	return c.pick(sort.SearchStrings(c.b.n.keys, c.at) - 1)
}

// Delete removes the key the cursor is at.
func (c *memCursor) Delete() error {
	if !c.set {
		return nil
	}
	return c.b.Delete([]byte(c.at))
}

// load adds one stored record (see the key format above) to the tree.
func (d *memDB) load(key string, val []byte) error {
	if key == "" {
		return fmt.Errorf("store: empty record key")
	}
	kind, rest := key[0], key[1:]
	var p, vk string
	switch kind {
	case 'b':
		p = rest
	case 'k':
		i := strings.LastIndexByte(rest, ':')
		if i < 0 {
			return fmt.Errorf("store: bad record key %q", key)
		}
		p, vk = rest[:i], rest[i+1:]
	default:
		return fmt.Errorf("store: bad record key %q", key)
	}
	n := d.root
	if p != "" {
		if p[0] != '/' {
			return fmt.Errorf("store: bad record key %q", key)
		}
		for _, seg := range strings.Split(p[1:], "/") {
			name, err := hex.DecodeString(seg)
			if err != nil || len(name) == 0 {
				return fmt.Errorf("store: bad record key %q", key)
			}
			c := n.subs[string(name)]
			if c == nil {
				if _, ok := n.vals[string(name)]; ok {
					return fmt.Errorf("store: record key %q: bucket and value share a name", key)
				}
				c = newMemNode(n, string(name))
				n.subs[c.name] = c
				n.insertKey(c.name)
			}
			n = c
		}
	}
	if kind == 'b' {
		if n == d.root || len(val) != 8 {
			return fmt.Errorf("store: bad bucket record %q", key)
		}
		n.seq = binary.BigEndian.Uint64(val)
		return nil
	}
	if n == d.root {
		return fmt.Errorf("store: value outside a bucket: %q", key)
	}
	k, err := hex.DecodeString(vk)
	if err != nil || len(k) == 0 {
		return fmt.Errorf("store: bad record key %q", key)
	}
	if _, ok := n.subs[string(k)]; ok {
		return fmt.Errorf("store: record key %q: bucket and value share a name", key)
	}
	n.vals[string(k)] = append([]byte{}, val...)
	n.insertKey(string(k))
	return nil
}
