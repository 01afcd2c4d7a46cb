package mls

import (
	"bytes"
	"testing"

	"hearth/keys/mls/handshake"
	"hearth/keys/mls/message"
	"hearth/keys/mls/suite"
)

// fuzzGroup returns bob's saved state in a two-member group whose
// ratchets bob has already derived, and messages to seed the corpus.
func fuzzGroup(f *testing.F) ([]byte, [][]byte) {
	s, _ := suite.Lookup(1)
	alice, bob := newDevice(f, s, "alice@a/1"), newDevice(f, s, "bob@b/1")
	var err error
	if alice.g, err = NewGroup(testConfig(), s, []byte("fuzz"), alice.signer, message.BasicCredential(alice.id), GroupOptions{}); err != nil {
		f.Fatal(err)
	}
	kp, priv := bob.keyPackage(f, s)
	commitAndApply(f, alice, CommitOptions{Add: []*message.KeyPackage{kp}}, nil, []*device{bob}, []*message.KeyPackagePrivate{priv})
	warm, _ := alice.g.Encrypt([]byte("warm"), nil)
	if _, err := bob.g.Process(warm); err != nil {
		f.Fatal(err)
	}
	if _, err := bob.g.Encrypt([]byte("own"), nil); err != nil {
		f.Fatal(err)
	}
	app, _ := alice.g.Encrypt([]byte("hello"), []byte("ad"))
	prop, err := alice.g.ProposeUpdate()
	if err != nil {
		f.Fatal(err)
	}
	out, err := alice.g.Commit(CommitOptions{UpdatePath: true})
	if err != nil {
		f.Fatal(err)
	}
	return mustMarshal(f, bob.g), [][]byte{app, prop, out.Commit, out.Welcome, out.GroupInfo}
}

// FuzzGroupProcess feeds arbitrary bytes to a real member: no panic, and
// a refused message leaves the saved state byte for byte unchanged.
func FuzzGroupProcess(f *testing.F) {
	state, seeds := fuzzGroup(f)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Add([]byte{0, 1, 0, 2})
	f.Fuzz(func(t *testing.T, msg []byte) {
		g, err := UnmarshalGroup(state, handshake.AcceptAll{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.Process(msg); err != nil {
			if after := mustMarshal(t, g); !bytes.Equal(after, state) {
				t.Fatalf("refused message changed the state: %v", err)
			}
		}
	})
}

// FuzzUnmarshalGroup: damaged state is refused without panic; accepted
// state re-encodes to the same bytes.
func FuzzUnmarshalGroup(f *testing.F) {
	state, _ := fuzzGroup(f)
	f.Add(state)
	f.Add(state[:len(state)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := UnmarshalGroup(b, handshake.AcceptAll{})
		if err != nil {
			return
		}
		if got := mustMarshal(t, g); !bytes.Equal(got, b) {
			t.Fatal("state re-encodes differently")
		}
	})
}

// FuzzJoinFromWelcome: arbitrary Welcome bytes for a real KeyPackage are
// refused without panic; the real Welcome joins.
func FuzzJoinFromWelcome(f *testing.F) {
	s, _ := suite.Lookup(1)
	alice, bob := newDevice(f, s, "alice@a/1"), newDevice(f, s, "bob@b/1")
	var err error
	if alice.g, err = NewGroup(testConfig(), s, []byte("fuzz"), alice.signer, message.BasicCredential(alice.id), GroupOptions{}); err != nil {
		f.Fatal(err)
	}
	kp, priv := bob.keyPackage(f, s)
	out, err := alice.g.Commit(CommitOptions{Add: []*message.KeyPackage{kp}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(out.Welcome)
	f.Add(out.GroupInfo)
	f.Fuzz(func(t *testing.T, welcome []byte) {
		g, err := JoinFromWelcome(testConfig(), welcome, kp, priv, JoinOptions{})
		if err == nil && g.Epoch() != out.Epoch {
			t.Fatalf("joined at epoch %d", g.Epoch())
		}
	})
}

// FuzzJoinExternal: arbitrary GroupInfo bytes are refused without panic.
func FuzzJoinExternal(f *testing.F) {
	s, _ := suite.Lookup(1)
	alice, dave := newDevice(f, s, "alice@a/1"), newDevice(f, s, "dave@d/1")
	var err error
	if alice.g, err = NewGroup(testConfig(), s, []byte("fuzz"), alice.signer, message.BasicCredential(alice.id), GroupOptions{}); err != nil {
		f.Fatal(err)
	}
	out, err := alice.g.Commit(CommitOptions{UpdatePath: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(out.GroupInfo)
	f.Fuzz(func(t *testing.T, gi []byte) {
		if g, commit, err := JoinExternal(testConfig(), gi, dave.signer, message.BasicCredential(dave.id), ExternalJoinOptions{}); err == nil {
			if g == nil || len(commit) == 0 {
				t.Fatal("success without group or commit")
			}
		}
	})
}

// FuzzDecodeKeyPackage: KeyPackages fetched from the directory.
func FuzzDecodeKeyPackage(f *testing.F) {
	s, _ := suite.Lookup(0xF001)
	kp, _ := newDevice(f, s, "a@b/1").keyPackage(f, s)
	f.Add(kp.Message())
	f.Fuzz(func(t *testing.T, b []byte) {
		if k, err := message.DecodeKeyPackage(b); err == nil && !bytes.Equal(k.Message(), b) {
			t.Fatal("accepted KeyPackage re-encodes differently")
		}
	})
}
