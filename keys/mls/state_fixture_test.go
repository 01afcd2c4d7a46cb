package mls

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"hearth/keys/mls/message"
	"hearth/keys/mls/suite"
	"hearth/keys/mls/treekem"
)

// stateFixture is a whole group state (Marshal) saved by the code of
// 2026-12-07 (b10c6bf): alice after adding bob and carol in two commits,
// sending and receiving in the newest epoch (past epochs retained,
// secret-tree ratchets moved), with a third commit pending.
const stateFixture = "testdata/group-state-v3.bin"

// TestStateFixtureStable: a state saved by the older code opens, and
// saving it again gives exactly its bytes, whole and split. Stored states
// live in every device's profile: their encoding must not drift when the
// encoder is rewritten (e.g. nested parts written in place). Run with
// HEARTH_WRITE_STATE_FIXTURE=1 to write the fixture anew (only on purpose,
// from code whose encoding is the reference).
func TestStateFixtureStable(t *testing.T) {
	if os.Getenv("HEARTH_WRITE_STATE_FIXTURE") == "1" {
		writeStateFixture(t)
	}
	b, err := os.ReadFile(stateFixture)
	if err != nil {
		t.Fatal(err)
	}
	g, err := UnmarshalGroupConfig(b, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if len(g.past) == 0 || g.pending == nil {
		t.Fatalf("fixture has %d past epochs, pending %v: it covers less than it should", len(g.past), g.pending != nil)
	}
	again, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, b) {
		t.Fatalf("state saved again differs from the stored one (%d bytes, want %d)", len(again), len(b))
	}
	state, trees, err := g.MarshalSplit()
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalGroupSplit(state, func(r treekem.TreeRef) ([]byte, error) { return trees[r], nil }, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if whole, err := back.Marshal(); err != nil || !bytes.Equal(whole, b) {
		t.Fatalf("split state restored differs from the stored one: %v", err)
	}
}

func writeStateFixture(t *testing.T) {
	s, _ := suite.Lookup(1)
	alice, bob, carol := newDevice(t, s, "alice@a/1"), newDevice(t, s, "bob@b/1"), newDevice(t, s, "carol@c/1")
	var err error
	if alice.g, err = NewGroup(testConfig(), s, []byte("fixture"), alice.signer, message.BasicCredential(alice.id), GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	kp, priv := bob.keyPackage(t, s)
	commitAndApply(t, alice, CommitOptions{Add: []*message.KeyPackage{kp}}, nil, []*device{bob}, []*message.KeyPackagePrivate{priv})
	kp, priv = carol.keyPackage(t, s)
	commitAndApply(t, alice, CommitOptions{Add: []*message.KeyPackage{kp}}, []*device{bob}, []*device{carol}, []*message.KeyPackagePrivate{priv})
	for i := range 3 {
		ct, err := bob.g.Encrypt([]byte{byte(i)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alice.g.Process(ct); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.g.Encrypt([]byte{byte(i)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := alice.g.Commit(CommitOptions{}); err != nil {
		t.Fatal(err)
	}
	b := mustMarshal(t, alice.g)
	if err := os.MkdirAll(filepath.Dir(stateFixture), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stateFixture, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkStateSaveSplit: what a member does after every message it
// sends or receives, on the fixture's 3-member group (the trees are
// memoized; the rest is encoded anew).
func BenchmarkStateSaveSplit(b *testing.B) {
	g := fixtureGroup(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := g.MarshalSplit(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemberIdentities: the member list a client reads for every
// message it sends or receives, on the fixture's 3-member group: from
// Members (each member's identity and key copied, as mlsgroup did) and
// from MemberIdentities (memoized with the tree).
func BenchmarkMemberIdentities(b *testing.B) {
	g := fixtureGroup(b)
	b.Run("members", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var out []string
			for _, m := range g.Members() {
				if len(m.Identity) > 0 {
					out = append(out, string(m.Identity))
				}
			}
		}
	})
	b.Run("identities", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			g.MemberIdentities()
		}
	})
}

// fixtureGroup opens the state fixture (a 3-member group) for a benchmark.
func fixtureGroup(b *testing.B) *Group {
	b.Helper()
	enc, err := os.ReadFile(stateFixture)
	if err != nil {
		b.Fatal(err)
	}
	g, err := UnmarshalGroupConfig(enc, testConfig())
	if err != nil {
		b.Fatal(err)
	}
	return g
}
