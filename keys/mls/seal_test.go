package mls

import (
	"bytes"
	"testing"

	"hearth/keys/mls/message"
	"hearth/keys/mls/suite"
	"hearth/keys/mls/treemath"
)

// TestSealToMember: what alice seals to bob's leaf opens only at bob, only
// with the same label and context, and not after tampering.
func TestSealToMember(t *testing.T) {
	s, _ := suite.Lookup(suite.Default)
	alice, bob := twoMembers(t, s, GroupOptions{}, message.KeyPackageOptions{})
	bl, _ := alice.g.LeafOf([]byte(bob.id))
	ct, err := alice.g.SealTo(bl, "test label", []byte("ctx"), []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	pt, err := bob.g.OpenSealed("test label", []byte("ctx"), ct)
	if err != nil || !bytes.Equal(pt, []byte("secret")) {
		t.Fatalf("bob opens %q, %v", pt, err)
	}
	if _, err := alice.g.OpenSealed("test label", []byte("ctx"), ct); err == nil {
		t.Fatal("alice opened what was sealed to bob")
	}
	if _, err := bob.g.OpenSealed("other label", []byte("ctx"), ct); err == nil {
		t.Fatal("opened under another label")
	}
	if _, err := bob.g.OpenSealed("test label", []byte("other"), ct); err == nil {
		t.Fatal("opened under another context")
	}
	bad := bytes.Clone(ct)
	bad[len(bad)-1] ^= 1
	if _, err := bob.g.OpenSealed("test label", []byte("ctx"), bad); err == nil {
		t.Fatal("opened a tampered ciphertext")
	}
	if _, err := alice.g.SealTo(treemath.LeafIndex(7), "l", nil, nil); err == nil {
		t.Fatal("sealed to a leaf that does not exist")
	}
}

// FuzzOpenSealed: sealed data comes from other members; opening never
// panics and never succeeds on arbitrary bytes.
func FuzzOpenSealed(f *testing.F) {
	s, _ := suite.Lookup(1)
	alice, bob := twoMembers(f, s, GroupOptions{}, message.KeyPackageOptions{})
	bl, _ := alice.g.LeafOf([]byte(bob.id))
	ct, err := alice.g.SealTo(bl, "l", nil, []byte("x"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte{})
	f.Add(ct[:10])
	f.Fuzz(func(t *testing.T, b []byte) {
		if bytes.Equal(b, ct) {
			return
		}
		if _, err := bob.g.OpenSealed("l", nil, b); err == nil {
			t.Fatal("opened arbitrary bytes")
		}
	})
}
