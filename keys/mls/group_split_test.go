package mls

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"slices"
	"testing"

	"hearth/keys/mls/message"
	"hearth/keys/mls/suite"
	"hearth/keys/mls/treekem"
	"hearth/keys/mls/treemath"
)

// checkTreeMemo fails unless t's memoized encoding and ref are those of
// its current nodes.
func checkTreeMemo(tb testing.TB, name string, t *treekem.RatchetTree) {
	tb.Helper()
	got, want := t.Marshal(), t.Nodes().Marshal()
	if !bytes.Equal(got, want) {
		tb.Fatalf("%s: memoized tree encoding is stale", name)
	}
	if cap(got) != len(got) {
		tb.Fatalf("%s: memoized encoding has spare capacity %d", name, cap(got)-len(got))
	}
	if t.Ref() != treekem.TreeRef(sha256.Sum256(want)) {
		tb.Fatalf("%s: memoized ref is stale", name)
	}
}

// checkGroupMemos checks the memo of every tree a group holds.
func checkGroupMemos(tb testing.TB, devs []*device) {
	tb.Helper()
	for _, d := range devs {
		if d.g == nil {
			continue
		}
		checkTreeMemo(tb, d.id, d.g.st.tree)
		var ids []string
		for _, m := range d.g.Members() {
			if len(m.Identity) > 0 {
				ids = append(ids, string(m.Identity))
			}
		}
		if got := d.g.MemberIdentities(); !slices.Equal(got, ids) {
			tb.Fatalf("%s: member identities %q, members %q", d.id, got, ids)
		}
		if d.g.pending != nil {
			checkTreeMemo(tb, d.id+" pending", d.g.pending.next.tree)
		}
	}
}

// restoreSplit replaces d's group with one restored from MarshalSplit's
// output, and checks that the restored group saves exactly like the
// original, whole and split.
func restoreSplit(t testing.TB, d *device) {
	t.Helper()
	whole := mustMarshal(t, d.g)
	state, trees, err := d.g.MarshalSplit()
	if err != nil {
		t.Fatal(err)
	}
	// One tree per epoch state (current, pending), one member list per
	// retained past epoch (equal ones share a ref).
	if want := 1 + btoi(d.g.pending != nil) + len(d.g.past); len(trees) > want || len(trees) == 0 {
		t.Fatalf("%s: %d blobs for %d epoch states and past epochs", d.id, len(trees), want)
	}
	for ref, enc := range trees {
		// A pending commit's GroupInfo carries its tree: only a state
		// without one is free of tree bytes.
		if (d.g.pending == nil && bytes.Contains(state, enc)) || treekem.TreeRef(sha256.Sum256(enc)) != ref {
			t.Fatalf("%s: tree %s embedded or misnamed", d.id, ref)
		}
	}
	calls := 0
	g, err := UnmarshalGroupSplit(state, func(r treekem.TreeRef) ([]byte, error) {
		calls++
		enc, ok := trees[r]
		if !ok {
			return nil, errors.New("no such tree")
		}
		return bytes.Clone(enc), nil
	}, testConfig())
	if err != nil {
		t.Fatalf("%s split restore: %v", d.id, err)
	}
	if want := 1 + btoi(d.g.pending != nil) + len(d.g.past); calls != want {
		t.Fatalf("%s: %d lookups, want %d (trees and past member lists)", d.id, calls, want)
	}
	state2, trees2, err := g.MarshalSplit()
	if err != nil || !bytes.Equal(state, state2) || len(trees2) != len(trees) {
		t.Fatalf("%s: restored split state differs (%v)", d.id, err)
	}
	if !bytes.Equal(mustMarshal(t, g), whole) {
		t.Fatalf("%s: restored group marshals differently", d.id)
	}
	d.g = g
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestGroupSplitRoundTrip: a group restored from its split form sends,
// receives and commits exactly like the original, with a pending commit
// (two trees) too.
func TestGroupSplitRoundTrip(t *testing.T) {
	for _, id := range []suite.ID{1, 0xF001} {
		t.Run(id.String(), func(t *testing.T) { splitRoundTrip(t, id) })
	}
}

func splitRoundTrip(t *testing.T, id suite.ID) {
	s, _ := suite.Lookup(id)
	alice, bob, carol := newDevice(t, s, "alice@a/1"), newDevice(t, s, "bob@b/1"), newDevice(t, s, "carol@c/1")
	var err error
	if alice.g, err = NewGroup(testConfig(), s, []byte("g"), alice.signer, message.BasicCredential(alice.id), GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	all := []*device{alice, bob, carol}
	kp, priv := bob.keyPackage(t, s)
	commitAndApply(t, alice, CommitOptions{Add: []*message.KeyPackage{kp}}, all, []*device{bob}, []*message.KeyPackagePrivate{priv})
	restoreSplit(t, alice)
	restoreSplit(t, bob)
	early, err := alice.g.Encrypt([]byte("before"), nil)
	if err != nil {
		t.Fatal(err)
	}
	// A pending commit adding carol: its next epoch's tree is saved too.
	kpC, privC := carol.keyPackage(t, s)
	out, err := alice.g.Commit(CommitOptions{Add: []*message.KeyPackage{kpC}, UpdatePath: true})
	if err != nil {
		t.Fatal(err)
	}
	checkGroupMemos(t, all)
	restoreSplit(t, alice)
	if p, ok := alice.g.PendingCommit(); !ok || !bytes.Equal(p.Commit, out.Commit) {
		t.Fatal("pending commit lost")
	}
	if _, err := alice.g.ApplyPendingCommit(); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.g.Process(out.Commit); err != nil {
		t.Fatal(err)
	}
	if carol.g, err = JoinFromWelcome(testConfig(), out.Welcome, kpC, privC, JoinOptions{}); err != nil {
		t.Fatal(err)
	}
	checkGroupMemos(t, all)
	for _, d := range all {
		restoreSplit(t, d)
	}
	checkAgreement(t, all)
	// The previous epoch's message still decrypts after restores.
	if res, err := bob.g.Process(early); err != nil || string(res.Plaintext) != "before" {
		t.Fatalf("previous-epoch message: %v", err)
	}
	commitAndApply(t, carol, CommitOptions{UpdatePath: true, Remove: []treemath.LeafIndex{bob.g.OwnLeaf()}}, all, nil, nil)
	checkGroupMemos(t, all)
	restoreSplit(t, alice)
	restoreSplit(t, carol)
	checkAgreement(t, []*device{alice, carol})
	ct, err := carol.g.Encrypt([]byte("after"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := alice.g.Process(ct); err != nil || string(res.Plaintext) != "after" {
		t.Fatalf("after split restores: %v", err)
	}
}

// splitFixture returns a two-member group of bob's in split form, with a
// pending commit (two trees), and another group's tree.
func splitFixture(t testing.TB) (state []byte, trees map[treekem.TreeRef][]byte, foreign []byte) {
	s, _ := suite.Lookup(1)
	alice, bob := newDevice(t, s, "alice@a/1"), newDevice(t, s, "bob@b/1")
	var err error
	if alice.g, err = NewGroup(testConfig(), s, []byte("split"), alice.signer, message.BasicCredential(alice.id), GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	kp, priv := bob.keyPackage(t, s)
	commitAndApply(t, alice, CommitOptions{Add: []*message.KeyPackage{kp}}, nil, []*device{bob}, []*message.KeyPackagePrivate{priv})
	if _, err := bob.g.Commit(CommitOptions{UpdatePath: true}); err != nil {
		t.Fatal(err)
	}
	if state, trees, err = bob.g.MarshalSplit(); err != nil {
		t.Fatal(err)
	}
	eve := newDevice(t, s, "eve@e/1")
	other, err := NewGroup(testConfig(), s, []byte("other"), eve.signer, message.BasicCredential(eve.id), GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return state, trees, other.st.tree.Marshal()
}

func lookupIn(trees map[treekem.TreeRef][]byte) func(treekem.TreeRef) ([]byte, error) {
	return func(r treekem.TreeRef) ([]byte, error) {
		if b, ok := trees[r]; ok {
			return bytes.Clone(b), nil
		}
		return nil, errNoTree
	}
}

var errNoTree = errors.New("test: no such tree")

// TestGroupSplitRefusesBadTrees: a missing tree, a tampered tree, a tree
// that hashes right but belongs to another group and a whole-state
// decoder given a split state are all refused with a clear error.
func TestGroupSplitRefusesBadTrees(t *testing.T) {
	state, trees, foreign := splitFixture(t)
	if len(trees) != 2 {
		t.Fatalf("%d trees, want 2 (current and pending)", len(trees))
	}
	if _, err := UnmarshalGroupSplit(state, lookupIn(trees), testConfig()); err != nil {
		t.Fatal(err)
	}
	for ref := range trees {
		missing := map[treekem.TreeRef][]byte{}
		tampered := map[treekem.TreeRef][]byte{}
		for r, b := range trees {
			tampered[r] = b
			if r != ref {
				missing[r] = b
			}
		}
		bad := bytes.Clone(trees[ref])
		bad[len(bad)/2] ^= 1
		tampered[ref] = bad
		if _, err := UnmarshalGroupSplit(state, lookupIn(missing), testConfig()); !errors.Is(err, errNoTree) || !errors.Is(err, message.ErrMalformed) {
			t.Fatalf("missing tree: %v", err)
		}
		if _, err := UnmarshalGroupSplit(state, lookupIn(tampered), testConfig()); !errors.Is(err, ErrTreeMismatch) {
			t.Fatalf("tampered tree: %v", err)
		}
		// The state rewritten to name another group's (intact) tree.
		fref := treekem.TreeRef(sha256.Sum256(foreign))
		swapped := bytes.Replace(state, ref[:], fref[:], 1)
		withForeign := map[treekem.TreeRef][]byte{fref: foreign}
		for r, b := range trees {
			withForeign[r] = b
		}
		if _, err := UnmarshalGroupSplit(swapped, lookupIn(withForeign), testConfig()); err == nil {
			t.Fatal("state naming another group's tree accepted")
		}
	}
	if _, err := UnmarshalGroupConfig(state, testConfig()); !errors.Is(err, message.ErrMalformed) {
		t.Fatalf("whole-state decoder on a split state: %v", err)
	}
	if _, err := UnmarshalGroupSplit(state, nil, testConfig()); err == nil {
		t.Fatal("nil tree lookup accepted")
	}
}

// TestGroupSplitReadsWholeState: UnmarshalGroupSplit restores a state
// saved whole by an older client without asking for trees.
func TestGroupSplitReadsWholeState(t *testing.T) {
	state, trees, _ := splitFixture(t)
	g, err := UnmarshalGroupSplit(state, lookupIn(trees), testConfig())
	if err != nil {
		t.Fatal(err)
	}
	whole := mustMarshal(t, g)
	g2, err := UnmarshalGroupSplit(whole, func(treekem.TreeRef) ([]byte, error) {
		t.Fatal("tree lookup for a whole state")
		return nil, nil
	}, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustMarshal(t, g2), whole) {
		t.Fatal("whole state restored differently")
	}
}

// FuzzUnmarshalGroupSplit: damaged split state is refused without panic;
// accepted state re-encodes to the same bytes and names only trees it
// was given.
func FuzzUnmarshalGroupSplit(f *testing.F) {
	state, trees, _ := splitFixture(f)
	whole, _ := fuzzGroup(f)
	f.Add(state)
	f.Add(state[:len(state)/2])
	f.Add(whole)
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := UnmarshalGroupSplit(b, lookupIn(trees), testConfig())
		if err != nil {
			return
		}
		got, gotTrees, err := g.MarshalSplit()
		if err != nil {
			t.Fatal(err)
		}
		if b[0] == splitStateVersion && !bytes.Equal(got, b) {
			t.Fatal("split state re-encodes differently")
		}
		if b[0] == groupStateVersion && !bytes.Equal(mustMarshal(t, g), b) {
			t.Fatal("whole state re-encodes differently")
		}
		for r, enc := range gotTrees {
			if b[0] == splitStateVersion && !bytes.Equal(trees[r], enc) {
				t.Fatalf("tree %s was not among those given", r)
			}
		}
	})
}

// TestGroupSplitPastMembers: a past epoch's member list is kept apart
// from the state like the trees (refused when missing or tampered), and a
// version-2 split state (member lists inline) still restores.
func TestGroupSplitPastMembers(t *testing.T) {
	s, _ := suite.Lookup(1)
	alice, bob := newDevice(t, s, "alice@a/1"), newDevice(t, s, "bob@b/1")
	var err error
	if alice.g, err = NewGroup(testConfig(), s, []byte("past"), alice.signer, message.BasicCredential(alice.id), GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	kp, priv := bob.keyPackage(t, s)
	commitAndApply(t, alice, CommitOptions{Add: []*message.KeyPackage{kp}}, nil, []*device{bob}, []*message.KeyPackagePrivate{priv})
	if len(alice.g.past) != 1 {
		t.Fatalf("premise: alice keeps %d past epochs", len(alice.g.past))
	}
	whole := mustMarshal(t, alice.g)
	state, blobs, err := alice.g.MarshalSplit()
	if err != nil {
		t.Fatal(err)
	}
	treeRef := alice.g.st.tree.Ref()
	var listRef treekem.TreeRef
	for r := range blobs {
		if r != treeRef {
			listRef = r
		}
	}
	if len(blobs) != 2 || listRef == (treekem.TreeRef{}) {
		t.Fatalf("%d blobs, want the tree and the past member list", len(blobs))
	}
	if bytes.Contains(state, blobs[listRef]) {
		t.Fatal("the past member list is still in the state")
	}
	missing := map[treekem.TreeRef][]byte{treeRef: blobs[treeRef]}
	if _, err := UnmarshalGroupSplit(state, lookupIn(missing), testConfig()); !errors.Is(err, errNoTree) {
		t.Fatalf("missing member list: %v", err)
	}
	bad := bytes.Clone(blobs[listRef])
	bad[len(bad)-1] ^= 1
	tampered := map[treekem.TreeRef][]byte{treeRef: blobs[treeRef], listRef: bad}
	if _, err := UnmarshalGroupSplit(state, lookupIn(tampered), testConfig()); !errors.Is(err, ErrTreeMismatch) {
		t.Fatalf("tampered member list: %v", err)
	}
	// Version 2: trees apart, member lists inline.
	v2 := alice.g.marshal(splitTreesVersion, func(tr *treekem.RatchetTree) []byte { r := tr.Ref(); return r[:] }, nil)
	g, err := UnmarshalGroupSplit(v2, lookupIn(map[treekem.TreeRef][]byte{treeRef: blobs[treeRef]}), testConfig())
	if err != nil {
		t.Fatalf("version 2 state: %v", err)
	}
	if !bytes.Equal(mustMarshal(t, g), whole) {
		t.Fatal("version 2 state restores differently")
	}
}
