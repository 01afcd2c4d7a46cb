package client_test

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"hearth/client"
	"hearth/client/mlsgroup"
)

// checkSplit fails unless st is a split state that embeds none of its
// stored blobs (its ratchet tree, and the member lists of the past epochs
// it keeps: at most 1 + 2), and returns the tree's reference (the
// largest blob: a leaf carries keys, a member list entry only names one).
func checkSplit(t *testing.T, who string, st client.TreeState) string {
	t.Helper()
	refs := st.Refs()
	if len(refs) == 0 || len(refs) > 3 {
		t.Fatalf("%s: %d stored blobs, want the tree and at most 2 past member lists (the state is not split, or stale blobs were kept)", who, len(refs))
	}
	tree := ""
	for _, r := range refs {
		b := st.Trees[r]
		if len(b) == 0 || bytes.Contains(st.State, b) {
			t.Fatalf("%s: the state embeds a stored blob", who)
		}
		if tree == "" || len(b) > len(st.Trees[tree]) {
			tree = r
		}
	}
	return tree
}

// TestGroupTreeStoredApart, through real Clients: a group's per-message
// saves do not rewrite its ratchet tree; a restarted Client restores
// state and trees from disk and carries on; a commit stores the new tree
// and drops the old one; a state saved whole (by an older client) loads
// and is saved split again; a removed member's trees go with its state.
func TestGroupTreeStoredApart(t *testing.T) {
	if testing.Short() {
		t.Skip("over 2 s: not in the -short loop")
	}
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "ann", "ben", "cat")
	ann, ben, cat := us[0], us[1], us[2]
	gid, err := ann.c.Groups().Create(ctx30(t), "trees", []string{ben.user})
	if err != nil {
		t.Fatal(err)
	}
	ben.drain()
	ann0, ben0 := ann.c.TreeState(t, gid), ben.c.TreeState(t, gid)
	ref := checkSplit(t, "ann", ann0)
	if checkSplit(t, "ben", ben0) != ref {
		t.Fatal("ann and ben store different trees for the same epoch")
	}
	hits0, _ := ben.c.GroupCacheStats()
	var want []string
	for i := range 8 {
		ann.send(gid, fmt.Sprint("m", i))
		want = append(want, fmt.Sprint("m", i))
	}
	if got := ben.drainTexts(); !slices.Equal(got, want) {
		t.Fatalf("ben got %q", got)
	}
	ben.send(gid, "reply")
	if got := ann.drainTexts(); !slices.Equal(got, []string{"reply"}) {
		t.Fatalf("ann got %q", got)
	}
	for _, c := range []struct {
		d      *dev
		before client.TreeState
	}{{ann, ann0}, {ben, ben0}} {
		after := c.d.c.TreeState(t, gid)
		if checkSplit(t, c.d.user, after) != ref || after.Writes != c.before.Writes ||
			!bytes.Equal(after.Trees[ref], c.before.Trees[ref]) {
			t.Fatalf("%s: messages rewrote the tree (writes %d -> %d)", c.d.user, c.before.Writes, after.Writes)
		}
		if bytes.Equal(after.State, c.before.State) {
			t.Fatalf("%s: state not saved", c.d.user)
		}
	}
	if hits, _ := ben.c.GroupCacheStats(); hits-hits0 < 8 {
		t.Fatalf("ben: %d group cache hits for 9 messages", hits-hits0)
	}

	// Restart: a new Client restores ben's state and tree from disk.
	ben = restartDev(t, ts, ben)
	ann.send(gid, "after restart")
	if got := ben.drainTexts(); !slices.Equal(got, []string{"after restart"}) {
		t.Fatalf("restarted ben got %q", got)
	}
	ben.send(gid, "ben is back")
	if got := ann.drainTexts(); !slices.Equal(got, []string{"ben is back"}) {
		t.Fatalf("ann got %q", got)
	}
	if h := ben.history(gid); len(h) < 11 || !strings.HasSuffix(h[len(h)-1], "ben is back") {
		t.Fatalf("ben's history after restart: %q", h)
	}

	// A commit: the new epoch's tree is stored, the old one dropped.
	annW, benW := ann.c.TreeState(t, gid).Writes, ben.c.TreeState(t, gid).Writes
	if err := ann.c.Groups().AddMembers(ctx30(t), gid, []string{cat.user}); err != nil {
		t.Fatal(err)
	}
	ben.drain()
	cat.drain()
	newRef := checkSplit(t, "ann", ann.c.TreeState(t, gid))
	if newRef == ref {
		t.Fatal("the tree did not change with the commit")
	}
	for _, d := range []*dev{ben, cat} {
		if got := checkSplit(t, d.user, d.c.TreeState(t, gid)); got != newRef {
			t.Fatalf("%s stores another tree than ann after the commit", d.user)
		}
	}
	if ann.c.TreeState(t, gid).Writes <= annW || ben.c.TreeState(t, gid).Writes <= benW {
		t.Fatal("tree writes not counted for the commit")
	}
	cat.send(gid, "hi from cat")
	for _, d := range []*dev{ann, ben} {
		if got := d.drainTexts(); !slices.Equal(got, []string{"hi from cat"}) {
			t.Fatalf("%s got %q", d.user, got)
		}
	}

	// A state saved whole by an older client loads and is saved split.
	ben.c.SaveGroupWhole(t, gid)
	if st := ben.c.TreeState(t, gid); len(st.Trees) != 0 || !bytes.Contains(st.State, ann.c.TreeState(t, gid).Trees[newRef]) {
		t.Fatal("whole state not stored whole")
	}
	ben = restartDev(t, ts, ben)
	ann.send(gid, "to the old state")
	if got := ben.drainTexts(); !slices.Equal(got, []string{"to the old state"}) {
		t.Fatalf("ben (whole state) got %q", got)
	}
	if got := checkSplit(t, "ben", ben.c.TreeState(t, gid)); got != newRef {
		t.Fatal("ben's whole state was not saved split again")
	}

	// A removed member forgets the conversation, trees included.
	if err := ann.c.Groups().RemoveMembers(ctx30(t), gid, []string{ben.user}); err != nil {
		t.Fatal(err)
	}
	ben.drain()
	if ben.c.HasGroup(t, gid) || ben.c.StoredTrees(t, gid) != 0 {
		t.Fatalf("removed ben kept the group (%v) or %d trees", ben.c.HasGroup(t, gid), ben.c.StoredTrees(t, gid))
	}
	if n := ann.c.StoredTrees(t, gid); n < 1 || n > 3 {
		t.Fatalf("ann stores %d blobs after the removal", n)
	}
}

// restartDev closes d's Client and opens a new one on its profile (an
// empty group cache: everything comes from disk).
func restartDev(t *testing.T, ts *client.TestServer, d *dev) *dev {
	t.Helper()
	if err := d.c.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := client.Open(client.Config{Profile: d.profile, Dial: ts.Dial(), Groups: mlsgroup.New(),
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &dev{t: t, c: c, user: d.user, profile: d.profile}
}
