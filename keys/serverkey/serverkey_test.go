package serverkey

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestSignVerifyAndPEM(t *testing.T) {
	k, err := Generate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sig := k.Sign("hearth test v1", []byte("hello"))
	if err := Verify(k.Public(), "hearth test v1", []byte("hello"), sig); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ label, msg string }{{"hearth test v2", "hello"}, {"hearth test v1", "hellO"}} {
		if err := Verify(k.Public(), c.label, []byte(c.msg), sig); !errors.Is(err, ErrSignature) {
			t.Fatalf("%q/%q verified: %v", c.label, c.msg, err)
		}
	}
	k2, err := ParsePEM(k.MarshalPEM())
	if err != nil || k2.ID() != k.ID() {
		t.Fatalf("PEM round trip: %v, id %s vs %s", err, k2.ID(), k.ID())
	}
	if s := fmt.Sprintf("%v %+v %#v %s", k, k, k, k); strings.Count(s, "[redacted]") != 4 {
		t.Fatalf("key printed: %s", s)
	}
	if _, err := ParsePEM([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")); !errors.Is(err, ErrKey) {
		t.Fatalf("wrong PEM type accepted: %v", err)
	}
	if !strings.HasPrefix(string(k.ID()), "ed25519:") || len(k.ID()) != len("ed25519:")+11 {
		t.Fatalf("id %q", k.ID())
	}
}

func TestSetValidity(t *testing.T) {
	old, _ := Generate(rand.Reader)
	cur, _ := Generate(rand.Reader)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	set := NewSet(
		PublicKey{ID: old.ID(), Key: old.Public(), ValidFrom: t0, ValidUntil: t0.Add(24 * time.Hour)},
		PublicKey{ID: cur.ID(), Key: cur.Public(), ValidFrom: t0.Add(23 * time.Hour)},
	)
	msg := []byte("txn")
	if err := set.Verify(old.ID(), t0.Add(time.Hour), "l", msg, old.Sign("l", msg)); err != nil {
		t.Fatalf("old key within window: %v", err)
	}
	if err := set.Verify(old.ID(), t0.Add(25*time.Hour), "l", msg, old.Sign("l", msg)); !errors.Is(err, ErrExpired) {
		t.Fatalf("old key after expiry: %v", err)
	}
	if err := set.Verify(cur.ID(), t0.Add(48*time.Hour), "l", msg, old.Sign("l", msg)); !errors.Is(err, ErrSignature) {
		t.Fatalf("signature by other key: %v", err)
	}
	if err := set.Verify("ed25519:nope", t0, "l", msg, nil); !errors.Is(err, ErrUnknown) {
		t.Fatalf("unknown id: %v", err)
	}
	// A set entry whose id does not belong to its key is refused.
	bad := NewSet(PublicKey{ID: old.ID(), Key: cur.Public()})
	if err := bad.Verify(old.ID(), t0, "l", msg, cur.Sign("l", msg)); !errors.Is(err, ErrKey) {
		t.Fatalf("mismatched id: %v", err)
	}
}
