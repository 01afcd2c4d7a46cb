package store

import (
	"errors"
	"fmt"
)

// Ratchet trees stored apart from group states. An MLS state saved in
// split form names its ratchet trees by reference; the trees (the largest
// part of a big group's state, and unchanged by messages) are stored once
// per conversation and reference in bucket bTrees, one nested bucket per
// conversation, so the per-message state save does not rewrite them. The
// nested bucket's sequence counts the trees ever written for the
// conversation (GroupTreeWrites).

var bTrees = []byte("group-trees")

// GroupTree returns the tree stored for conv under ref, or ErrNotFound.
func (t *Tx) GroupTree(conv string, ref []byte) ([]byte, error) {
	if b := treesOf(t).bucket(conv); b != nil && len(ref) > 0 {
		v, err := t.get(b, ref)
		if err != nil {
			return nil, err
		}
		if v != nil {
			return v, nil
		}
	}
	return nil, ErrNotFound
}

// GroupTreeRefs lists the references of conv's stored trees, in order.
func (t *Tx) GroupTreeRefs(conv string) [][]byte {
	var refs [][]byte
	if b := treesOf(t).bucket(conv); b != nil {
		b.ForEach(func(k, _ []byte) error {
			refs = append(refs, cloneBytes(k))
			return nil
		})
	}
	return refs
}

// GroupTreeWrites returns how many trees were ever written for conv
// (since it was last deleted).
func (t *Tx) GroupTreeWrites(conv string) uint64 {
	if b := treesOf(t).bucket(conv); b != nil {
		return b.Sequence()
	}
	return 0
}

// PutGroupSplit replaces conv's MLS state with state, a split state that
// refers to the trees in trees (by reference). A tree already stored
// under its reference is not written again; conv's stored trees that
// trees does not name are deleted. State and trees change together, in
// this transaction.
func (t *Tx) PutGroupSplit(conv string, state []byte, trees map[string][]byte) error {
	for ref, tree := range trees {
		if ref == "" || len(tree) == 0 {
			return fmt.Errorf("store: group %s: empty tree or tree reference", conv)
		}
	}
	if err := t.putState(conv, state); err != nil {
		return fmt.Errorf("store: group %s: %w", conv, err)
	}
	refs := refsKey(trees)
	if len(trees) > 0 && t.trees.holds(conv, refs) {
		return nil // the bucket holds exactly these (treesmemo.go)
	}
	if err := treesOf(t).sync(conv, trees); err != nil {
		return fmt.Errorf("store: group %s trees: %w", conv, err)
	}
	if len(trees) > 0 {
		t.trees.synced(conv, refs, t.id)
	}
	return nil
}

// groupTrees is bucket bTrees: one nested bucket of trees per conversation.
type groupTrees struct {
	b *kvBucket
	t *Tx
}

func treesOf(t *Tx) groupTrees { return groupTrees{t.bucket(bTrees), t} }

// sync makes conv's stored trees exactly trees, writing only the absent
// ones.
func (g groupTrees) sync(conv string, trees map[string][]byte) error {
	g.t.trees.forget(conv)
	if len(trees) == 0 {
		return g.delete(conv)
	}
	b, err := g.b.CreateBucketIfNotExists([]byte(conv))
	if err != nil {
		return err
	}
	var stale [][]byte
	b.ForEach(func(k, _ []byte) error {
		if _, keep := trees[string(k)]; !keep {
			stale = append(stale, cloneBytes(k))
		}
		return nil
	})
	for _, k := range stale {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	for ref, tree := range trees {
		if b.Get([]byte(ref)) != nil {
			continue
		}
		if _, err := b.NextSequence(); err != nil {
			return err
		}
		if err := g.t.put(b, []byte(ref), tree); err != nil {
			return err
		}
	}
	return nil
}

// delete removes every tree stored for conv.
func (g groupTrees) delete(conv string) error {
	g.t.trees.forget(conv)
	if g.bucket(conv) == nil {
		return nil
	}
	err := g.b.DeleteBucket([]byte(conv))
	if errors.Is(err, errBucketNotFound) {
		return nil
	}
	return err
}

// bucket returns conv's bucket of trees, nil if it has none.
func (g groupTrees) bucket(conv string) *kvBucket {
	if conv == "" {
		return nil
	}
	return g.b.Bucket([]byte(conv))
}
