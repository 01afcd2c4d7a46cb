//go:build !js

package store

import (
	"errors"
	"maps"
	"slices"
	"testing"
)

func (s *Store) treeSyncs() int {
	s.trees.mu.Lock()
	defer s.trees.mu.Unlock()
	return s.trees.syncs
}

// TestTreesMemo: a state save naming the trees the conversation's bucket
// already holds (every message's) does not sync the bucket again; any
// other change of the trees, a failed transaction and another process's
// writes (the file opened again) make the next save sync them, and the
// bucket always ends up holding exactly the trees the state names.
func TestTreesMemo(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	defer s.Close()
	const conv = "conv-1"
	save := func(s *Store, state string, refs ...string) {
		t.Helper()
		trees := map[string][]byte{}
		for _, r := range refs {
			trees[r] = []byte("tree " + r)
		}
		if err := s.Update(func(tx *Tx) error { return tx.PutGroupSplit(conv, []byte(state), trees) }); err != nil {
			t.Fatal(err)
		}
	}
	holds := func(s *Store, refs ...string) {
		t.Helper()
		v := viewTrees(t, s, conv)
		got := slices.Sorted(maps.Keys(v.trees))
		if !slices.Equal(got, refs) {
			t.Fatalf("stored trees %q, want %q", got, refs)
		}
		for _, r := range refs {
			if v.trees[r] != "tree "+r {
				t.Fatalf("tree %s is %q", r, v.trees[r])
			}
		}
	}

	save(s, "s0", "A")
	syncs := s.treeSyncs()
	for i := range 10 {
		save(s, "s"+string(rune('1'+i)), "A")
	}
	if n := s.treeSyncs() - syncs; n != 0 {
		t.Errorf("10 saves naming the stored tree synced the bucket %d times, want 0", n)
	}
	holds(s, "A")

	save(s, "t1", "A", "B") // a pending commit's next tree
	holds(s, "A", "B")
	save(s, "t2", "B") // merged
	holds(s, "B")
	syncs = s.treeSyncs()
	save(s, "t3", "B")
	if n := s.treeSyncs() - syncs; n != 0 {
		t.Errorf("a save naming the stored tree after a change synced %d times, want 0", n)
	}

	if err := s.Update(func(tx *Tx) error { return tx.DeleteGroup(conv) }); err != nil {
		t.Fatal(err)
	}
	holds(s)
	save(s, "u1", "B")
	holds(s, "B")

	// A transaction that stored other trees and failed: the next save
	// of them must write them.
	boom := errors.New("rolled back")
	if err := s.Update(func(tx *Tx) error {
		if err := tx.PutGroupSplit(conv, []byte("v1"), map[string][]byte{"C": []byte("tree C")}); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	holds(s, "B")
	save(s, "v2", "C")
	holds(s, "C")

	// Another process changes the trees while this one does not hold the
	// file.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	other := open(t, dir)
	if err := other.Update(func(tx *Tx) error { return tx.PutGroup(conv, []byte("whole")) }); err != nil {
		t.Fatal(err)
	}
	holds(other)
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	save(s, "w1", "C")
	holds(s, "C")
}
