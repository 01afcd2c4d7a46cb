package identity

import (
	"regexp"
	"testing"
)

// TestSafetyNumber: both users compute the same 60 digits; another key for
// either user gives another number.
func TestSafetyNumber(t *testing.T) {
	key := func(b byte) PublicKey {
		var k PublicKey
		for i := range k.b {
			k.b[i] = b + byte(i)
		}
		return k
	}
	alice, _ := ParseUser("alice@a.example")
	bob, _ := ParseUser("bob@b.example")
	n := SafetyNumber(alice, key(1), bob, key(2))
	if !regexp.MustCompile(`^(\d{5} ){11}\d{5}$`).MatchString(n) {
		t.Fatalf("safety number %q is not 12 groups of 5 digits", n)
	}
	if m := SafetyNumber(bob, key(2), alice, key(1)); m != n {
		t.Fatalf("the two sides differ: %q and %q", n, m)
	}
	if m := SafetyNumber(alice, key(1), bob, key(3)); m == n || m[:35] != n[:35] {
		t.Fatalf("bob's new key: %q, was %q (alice's half must stay, bob's change)", m, n)
	}
	if m := SafetyNumber(alice, key(4), bob, key(2)); m == n {
		t.Fatal("alice's new key gives the same number")
	}
}
