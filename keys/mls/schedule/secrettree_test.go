package schedule

import (
	"bytes"
	"errors"
	"testing"

	"hearth/keys/mls/suite"
)

func newTree(t testing.TB, id suite.ID, leaves uint32, lim Limits) *SecretTree {
	t.Helper()
	s, err := suite.Lookup(id)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := NewSecretTree(s, bytes.Repeat([]byte{7}, s.Nh()), leaves, lim)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

var errForged = errors.New("forged")

// capture returns a try func that records the key it was given.
func capture(dst *[]byte) func(KeyNonce) error {
	return func(kn KeyNonce) error { *dst = bytes.Clone(kn.Key); return nil }
}

func TestSenderAndReceiverAgree(t *testing.T) {
	for _, id := range suite.Supported() {
		sender := newTree(t, id, 4, DefaultLimits)
		receiver := newTree(t, id, 4, DefaultLimits)
		var sent []KeyNonce
		for range 5 {
			kn, err := sender.Next(2, Application)
			if err != nil {
				t.Fatal(err)
			}
			sent = append(sent, kn)
		}
		// Receive out of order: 3, 0, 4, 1, 2.
		for _, g := range []int{3, 0, 4, 1, 2} {
			var got []byte
			if err := receiver.Open(2, Application, uint32(g), capture(&got)); err != nil {
				t.Fatalf("suite %v gen %d: %v", id, g, err)
			}
			if !bytes.Equal(got, sent[g].Key) {
				t.Fatalf("suite %v gen %d: key mismatch", id, g)
			}
		}
		// Handshake ratchet is independent of the application one.
		hs, _ := sender.Next(2, Handshake)
		if hs.Generation != 0 || bytes.Equal(hs.Key, sent[0].Key) {
			t.Fatalf("suite %v: handshake ratchet not independent", id)
		}
	}
}

func TestFailedTryChangesNothing(t *testing.T) {
	tree := newTree(t, 1, 2, DefaultLimits)
	before := tree.Marshal()
	if err := tree.Open(1, Application, 10, func(KeyNonce) error { return errForged }); !errors.Is(err, errForged) {
		t.Fatalf("got %v", err)
	}
	// The leaf's ratchets are now initialized (that is not a message
	// effect), but no generation was consumed: 0 and 10 both still open.
	var k0, k10 []byte
	if err := tree.Open(1, Application, 0, capture(&k0)); err != nil {
		t.Fatal(err)
	}
	if err := tree.Open(1, Application, 10, capture(&k10)); err != nil {
		t.Fatal(err)
	}
	// A failed try on a skipped key leaves it in place.
	if err := tree.Open(1, Application, 5, func(KeyNonce) error { return errForged }); !errors.Is(err, errForged) {
		t.Fatal(err)
	}
	var k5 []byte
	if err := tree.Open(1, Application, 5, capture(&k5)); err != nil || k5 == nil {
		t.Fatalf("skipped key lost after failed try: %v", err)
	}
	if bytes.Equal(before, tree.Marshal()) {
		t.Fatal("state did not change after successful opens")
	}
}

func TestWindowBounds(t *testing.T) {
	lim := Limits{MaxForward: 20, MaxRetained: 5}
	tree := newTree(t, 1, 1, lim)
	var k []byte
	if err := tree.Open(0, Handshake, 21, capture(&k)); !errors.Is(err, ErrTooFar) {
		t.Fatalf("jump of 21 with limit 20: %v", err)
	}
	if err := tree.Open(0, Handshake, 20, capture(&k)); err != nil {
		t.Fatalf("jump of 20: %v", err)
	}
	// Next is 21; generations 16..19 are retained (5 behind 21 = 16..20,
	// 20 consumed), 15 and older were deleted.
	if err := tree.Open(0, Handshake, 15, capture(&k)); !errors.Is(err, ErrTooOld) {
		t.Fatalf("generation 15 outside window: %v", err)
	}
	for g := uint32(16); g < 20; g++ {
		if err := tree.Open(0, Handshake, g, capture(&k)); err != nil {
			t.Fatalf("retained generation %d: %v", g, err)
		}
	}
	if err := tree.Open(0, Handshake, 20, capture(&k)); !errors.Is(err, ErrTooOld) {
		t.Fatalf("generation 20 twice: %v", err)
	}
	if n := len(tree.ratchets[ratchetID{0, Handshake}].skipped); n != 0 {
		t.Fatalf("%d skipped keys left", n)
	}
	// Moving far ahead in steps prunes the window.
	for g := uint32(40); g <= 200; g += 20 {
		if err := tree.Open(0, Handshake, g, capture(&k)); err != nil {
			t.Fatal(err)
		}
		if n := len(tree.ratchets[ratchetID{0, Handshake}].skipped); n > int(lim.MaxRetained) {
			t.Fatalf("%d skipped keys retained, limit %d", n, lim.MaxRetained)
		}
	}
}

func TestSecretTreeInputErrors(t *testing.T) {
	s, _ := suite.Lookup(1)
	sec := make([]byte, 32)
	for _, n := range []uint32{0, 3, 6, 1 << 31} {
		if _, err := NewSecretTree(s, sec, n, DefaultLimits); !errors.Is(err, ErrInput) {
			t.Errorf("leaf count %d: %v", n, err)
		}
	}
	if _, err := NewSecretTree(s, sec[:31], 4, DefaultLimits); !errors.Is(err, ErrInput) {
		t.Error("short encryption secret accepted")
	}
	tree := newTree(t, 1, 4, DefaultLimits)
	if _, err := tree.Next(4, Application); !errors.Is(err, ErrLeaf) {
		t.Errorf("leaf 4 of 4: %v", err)
	}
	if _, err := tree.Next(0, 9); !errors.Is(err, ErrInput) {
		t.Errorf("ratchet type 9: %v", err)
	}
}

func TestParentSecretsDeleted(t *testing.T) {
	tree := newTree(t, 1, 8, DefaultLimits)
	if _, err := tree.Next(0, Application); err != nil {
		t.Fatal(err)
	}
	// Path root 7 -> 3 -> 1 -> 0 expanded: left siblings' subtrees and the
	// right children remain; the expanded nodes and leaf 0's secret are gone.
	for _, x := range []uint32{7, 3, 1, 0} {
		if _, ok := tree.nodes[x]; ok {
			t.Errorf("node %d secret still held", x)
		}
	}
	for _, x := range []uint32{11, 5, 2} {
		if _, ok := tree.nodes[x]; !ok {
			t.Errorf("node %d secret missing", x)
		}
	}
}

func TestStateRoundTrip(t *testing.T) {
	a := newTree(t, 2, 8, Limits{MaxForward: 100, MaxRetained: 10})
	var k []byte
	for _, op := range []struct {
		leaf, gen uint32
		typ       RatchetType
	}{{0, 5, Application}, {3, 0, Handshake}, {3, 40, Application}, {7, 1, Application}} {
		if err := a.Open(op.leaf, op.typ, op.gen, capture(&k)); err != nil {
			t.Fatal(err)
		}
	}
	b, err := UnmarshalSecretTree(a.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Marshal(), b.Marshal()) {
		t.Fatal("re-marshal differs")
	}
	// Both copies continue identically: a skipped key, a new leaf, a jump.
	for _, op := range []struct {
		leaf, gen uint32
		typ       RatchetType
	}{{0, 2, Application}, {5, 3, Handshake}, {3, 45, Application}} {
		var ka, kb []byte
		if err := a.Open(op.leaf, op.typ, op.gen, capture(&ka)); err != nil {
			t.Fatal(err)
		}
		if err := b.Open(op.leaf, op.typ, op.gen, capture(&kb)); err != nil || !bytes.Equal(ka, kb) {
			t.Fatalf("restored tree diverged at %+v: %v", op, err)
		}
	}
	// Truncations and a bit flip in the header are refused.
	enc := a.Marshal()
	for _, bad := range [][]byte{nil, enc[:len(enc)-1], append(bytes.Clone(enc), 0), func() []byte { c := bytes.Clone(enc); c[0] = 9; return c }()} {
		if _, err := UnmarshalSecretTree(bad); !errors.Is(err, ErrEncoding) {
			t.Errorf("bad state accepted: %v", err)
		}
	}
}

func TestEpochStateRoundTrip(t *testing.T) {
	s, _ := suite.Lookup(suite.Default)
	e, err := NewEpoch(s, make([]byte, 32), nil, nil, []byte("group context"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalEpoch(e.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Marshal(), e.Marshal()) || !bytes.Equal(got.InitSecret, e.InitSecret) {
		t.Fatal("epoch round trip differs")
	}
	enc := e.Marshal()
	if _, err := UnmarshalEpoch(enc[:len(enc)-1]); !errors.Is(err, ErrEncoding) {
		t.Fatalf("truncated epoch accepted: %v", err)
	}
	enc[2] = 4 // suite 4 is not implemented
	if _, err := UnmarshalEpoch(enc); !errors.Is(err, ErrEncoding) {
		t.Fatalf("unsupported suite accepted: %v", err)
	}
}

func FuzzUnmarshalSecretTree(f *testing.F) {
	tree := newTree(f, 1, 4, Limits{MaxForward: 50, MaxRetained: 4})
	var k []byte
	tree.Open(1, Application, 6, capture(&k))
	f.Add(tree.Marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := UnmarshalSecretTree(data)
		if err != nil {
			return
		}
		if !bytes.Equal(st.Marshal(), data) {
			t.Fatal("accepted state does not re-marshal to itself")
		}
		_ = st.Open(0, Handshake, 3, func(KeyNonce) error { return nil })
	})
}

func FuzzUnmarshalEpoch(f *testing.F) {
	s, _ := suite.Lookup(1)
	e, _ := NewEpoch(s, make([]byte, 32), nil, nil, nil)
	f.Add(e.Marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		if e, err := UnmarshalEpoch(data); err == nil && !bytes.Equal(e.Marshal(), data) {
			t.Fatal("accepted epoch does not re-marshal to itself")
		}
	})
}

func BenchmarkSecretTree(b *testing.B) {
	for _, id := range []suite.ID{suite.MLS128X25519AES128GCMSHA256Ed25519, suite.Default} {
		b.Run(id.String()+"/next", func(b *testing.B) {
			tree := newTree(b, id, 1, DefaultLimits)
			for b.Loop() {
				if _, err := tree.Next(0, Application); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(id.String()+"/new-leaf-of-1024", func(b *testing.B) {
			for b.Loop() {
				tree := newTree(b, id, 1024, DefaultLimits)
				if _, err := tree.Next(517, Application); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(id.String()+"/jump-1024", func(b *testing.B) {
			for b.Loop() {
				tree := newTree(b, id, 1, DefaultLimits)
				if err := tree.Open(0, Application, 1024, func(KeyNonce) error { return nil }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestClearAndDrop(t *testing.T) {
	s, _ := suite.Lookup(1)
	e, err := NewEpoch(s, make([]byte, 32), nil, nil, []byte("gc"))
	if err != nil {
		t.Fatal(err)
	}
	init := bytes.Clone(e.InitSecret)
	e.DropJoinerSecrets()
	if e.JoinerSecret != nil || e.WelcomeSecret != nil || e.EpochSecret != nil {
		t.Fatal("joiner secrets kept")
	}
	got, err := UnmarshalEpoch(e.Marshal())
	if err != nil || !bytes.Equal(got.InitSecret, init) || got.EpochSecret != nil {
		t.Fatalf("dropped epoch round trip: %v", err)
	}
	if x, err := got.Export("label", nil, 16); err != nil || len(x) != 16 {
		t.Fatalf("export after drop: %v", err)
	}
	secret := e.SenderDataSecret
	e.Clear()
	if !bytes.Equal(secret, make([]byte, 32)) || e.InitSecret != nil {
		t.Fatal("Clear left secrets")
	}

	tree := newTree(t, 1, 4, DefaultLimits)
	var k []byte
	tree.Open(1, Application, 3, capture(&k))
	held := tree.ratchets[ratchetID{1, Application}].skipped[1].Key
	tree.Clear()
	if !bytes.Equal(held, make([]byte, 16)) {
		t.Fatal("skipped key not zeroed")
	}
	if _, err := tree.Next(0, Application); !errors.Is(err, ErrLeaf) {
		t.Fatalf("cleared tree still usable: %v", err)
	}
}

func TestExternalInitRoundTrip(t *testing.T) {
	for _, id := range suite.Supported() {
		s, _ := suite.Lookup(id)
		e, err := NewEpoch(s, make([]byte, s.Nh()), nil, nil, []byte("gc"))
		if err != nil {
			t.Fatal(err)
		}
		_, pub, err := e.ExternalKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		kemOutput, joinerInit, err := ExternalInit(s, pub)
		if err != nil {
			t.Fatal(err)
		}
		memberInit, err := e.ExternalInitSecret(kemOutput)
		if err != nil || !bytes.Equal(memberInit, joinerInit) || len(joinerInit) != s.Nh() {
			t.Fatalf("suite %v: external init secrets differ: %v", id, err)
		}
		if _, err := e.ExternalInitSecret(kemOutput[:len(kemOutput)-1]); err == nil {
			t.Fatalf("suite %v: truncated kem output accepted", id)
		}
	}
}
