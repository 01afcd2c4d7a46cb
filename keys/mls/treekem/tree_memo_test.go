package treekem

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"slices"
	"testing"

	"hearth/keys/mls/message"
	"hearth/keys/mls/suite"
)

// checkTreeMemo fails unless t's memoized encoding and ref are those of
// its current nodes.
func checkTreeMemo(tb testing.TB, name string, t *RatchetTree) {
	tb.Helper()
	got, want := t.Marshal(), t.Nodes().Marshal()
	if !bytes.Equal(got, want) {
		tb.Fatalf("%s: memoized tree encoding is stale", name)
	}
	if cap(got) != len(got) {
		tb.Fatalf("%s: memoized encoding has spare capacity %d", name, cap(got)-len(got))
	}
	if t.Ref() != TreeRef(sha256.Sum256(want)) {
		tb.Fatalf("%s: memoized ref is stale", name)
	}
	var ids []string
	for _, l := range t.Members() {
		if id := t.Leaf(l).Credential.Identity; len(id) > 0 {
			ids = append(ids, string(id))
		}
	}
	if got := t.Identities(); !slices.Equal(got, ids) || cap(got) != len(got) {
		tb.Fatalf("%s: memoized identities %q, want %q", name, got, ids)
	}
}

// TestTreeMemo: every operation that changes a tree drops its memoized
// encoding, and a clone does not carry it over.
func TestTreeMemo(t *testing.T) {
	s, _ := suite.Lookup(1)
	leaf := func(id string) *message.LeafNode {
		l := newTestMember(t, s, rand.Reader, id).kp.LeafNode
		return &l
	}
	tr := NewOneMemberTree(s, leaf("a@x/1"))
	checkTreeMemo(t, "one member", tr)
	for i, id := range []string{"b@x/1", "c@x/1", "d@x/1"} {
		tr.AddLeaf(leaf(id))
		checkTreeMemo(t, "add "+id, tr)
		if int(tr.NumLeaves()) < i+2 {
			t.Fatal("leaf not added")
		}
	}
	before := tr.Marshal()
	c := tr.Clone()
	if c.enc != nil || c.ref != nil || c.ids != nil {
		t.Fatal("clone carries the memo")
	}
	if err := c.UpdateLeaf(1, leaf("b@x/1")); err != nil {
		t.Fatal(err)
	}
	checkTreeMemo(t, "update on clone", c)
	if !bytes.Equal(tr.Marshal(), before) || bytes.Equal(c.Marshal(), before) {
		t.Fatal("clone and original encodings mixed up")
	}
	if err := tr.RemoveLeaf(3); err != nil {
		t.Fatal(err)
	}
	checkTreeMemo(t, "remove", tr)
	if err := tr.RemoveLeaf(2); err != nil {
		t.Fatal(err)
	}
	checkTreeMemo(t, "remove and truncate", tr)
	if tr.NumLeaves() != 2 {
		t.Fatalf("tree not truncated: %d leaves", tr.NumLeaves())
	}
	// Appending to the returned encoding does not reach the memo.
	b := tr.Marshal()
	_ = append(b, 0xff)
	checkTreeMemo(t, "after append", tr)
}
