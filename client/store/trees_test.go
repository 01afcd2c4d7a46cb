package store

import (
	"errors"
	"slices"
	"testing"
)

// treeView is what the store holds for one conversation.
type treeView struct {
	state  string
	refs   []string
	trees  map[string]string
	writes uint64
}

func viewTrees(t *testing.T, s *Store, conv string) treeView {
	t.Helper()
	v := treeView{trees: map[string]string{}}
	err := s.View(func(tx *Tx) error {
		if st, err := tx.Group(conv); err == nil {
			v.state = string(st)
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		for _, r := range tx.GroupTreeRefs(conv) {
			v.refs = append(v.refs, string(r))
			b, err := tx.GroupTree(conv, r)
			if err != nil {
				return err
			}
			v.trees[string(r)] = string(b)
		}
		v.writes = tx.GroupTreeWrites(conv)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func putSplit(t *testing.T, s *Store, conv, state string, trees map[string][]byte) {
	t.Helper()
	if err := s.Update(func(tx *Tx) error { return tx.PutGroupSplit(conv, []byte(state), trees) }); err != nil {
		t.Fatal(err)
	}
}

// TestGroupTrees: a tree is written once however often the state naming
// it is saved, trees no longer named are deleted with the save, a whole
// state or the conversation's deletion removes them all, and another
// conversation's trees are never touched.
func TestGroupTrees(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	const conv, other = "c1@a.example", "c2@a.example"
	t1, t2 := []byte("tree one"), []byte("tree two")
	putSplit(t, s, other, "other-state", map[string][]byte{"r1": t1})
	for i := range 3 {
		putSplit(t, s, conv, "state-"+string(rune('a'+i)), map[string][]byte{"r1": t1})
	}
	v := viewTrees(t, s, conv)
	if v.state != "state-c" || !slices.Equal(v.refs, []string{"r1"}) || v.trees["r1"] != "tree one" || v.writes != 1 {
		t.Fatalf("after three saves: %+v", v)
	}
	// A pending commit's next tree joins; then the commit is merged.
	putSplit(t, s, conv, "pending", map[string][]byte{"r1": t1, "r2": t2})
	if v := viewTrees(t, s, conv); !slices.Equal(v.refs, []string{"r1", "r2"}) || v.writes != 2 {
		t.Fatalf("with pending tree: %+v", v)
	}
	putSplit(t, s, conv, "merged", map[string][]byte{"r2": t2})
	if v := viewTrees(t, s, conv); !slices.Equal(v.refs, []string{"r2"}) || v.writes != 2 || v.state != "merged" {
		t.Fatalf("after merge: %+v", v)
	}
	if err := s.View(func(tx *Tx) error { _, err := tx.GroupTree(conv, []byte("r1")); return err }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("dropped tree still readable: %v", err)
	}
	s.Close()
	s = open(t, dir)
	defer s.Close()
	if v := viewTrees(t, s, conv); !slices.Equal(v.refs, []string{"r2"}) || v.trees["r2"] != "tree two" || v.writes != 2 {
		t.Fatalf("after reopen: %+v", v)
	}
	// A whole state (an engine without split support) drops the trees.
	if err := s.Update(func(tx *Tx) error { return tx.PutGroup(conv, []byte("whole")) }); err != nil {
		t.Fatal(err)
	}
	if v := viewTrees(t, s, conv); v.state != "whole" || len(v.refs) != 0 || v.writes != 0 {
		t.Fatalf("after whole save: %+v", v)
	}
	putSplit(t, s, conv, "split again", map[string][]byte{"r1": t1})
	if err := s.Update(func(tx *Tx) error { return tx.DeleteGroup(conv) }); err != nil {
		t.Fatal(err)
	}
	if v := viewTrees(t, s, conv); v.state != "" || len(v.refs) != 0 {
		t.Fatalf("after delete: %+v", v)
	}
	if v := viewTrees(t, s, other); v.state != "other-state" || !slices.Equal(v.refs, []string{"r1"}) || v.writes != 1 {
		t.Fatalf("other conversation changed: %+v", v)
	}
}

// TestGroupTreesBadInput: refused input and a rolled-back transaction
// change nothing.
func TestGroupTreesBadInput(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	const conv = "c@a.example"
	putSplit(t, s, conv, "good", map[string][]byte{"r1": []byte("t1")})
	want := viewTrees(t, s, conv)
	bad := map[string]func(tx *Tx) error{
		"no conversation": func(tx *Tx) error { return tx.PutGroupSplit("", []byte("s"), nil) },
		"no state":        func(tx *Tx) error { return tx.PutGroupSplit(conv, nil, nil) },
		"empty ref":       func(tx *Tx) error { return tx.PutGroupSplit(conv, []byte("s"), map[string][]byte{"": []byte("t")}) },
		"empty tree":      func(tx *Tx) error { return tx.PutGroupSplit(conv, []byte("s"), map[string][]byte{"r2": nil}) },
		"rolled back": func(tx *Tx) error {
			if err := tx.PutGroupSplit(conv, []byte("s"), map[string][]byte{"r2": []byte("t2")}); err != nil {
				return err
			}
			return errors.New("later step failed")
		},
	}
	for name, fn := range bad {
		if err := s.Update(fn); err == nil {
			t.Fatalf("%s: accepted", name)
		}
		if got := viewTrees(t, s, conv); got.state != want.state || !slices.Equal(got.refs, want.refs) || got.writes != want.writes {
			t.Fatalf("%s changed the store: %+v", name, got)
		}
	}
	if err := s.View(func(tx *Tx) error { _, err := tx.GroupTree(conv, nil); return err }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty ref lookup: %v", err)
	}
}
