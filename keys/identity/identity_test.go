package identity

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// detRand is a deterministic byte stream for reproducible keys in tests.
type detRand struct{ ctr uint64 }

func (d *detRand) Read(p []byte) (int, error) {
	for i := 0; i < len(p); i += 32 {
		d.ctr++
		sum := sha256.Sum256(fmt.Appendf(nil, "identity detrand %d", d.ctr))
		copy(p[i:], sum[:])
	}
	return len(p), nil
}

func TestAddresses(t *testing.T) {
	good := []string{"alice@a.example", "a@b", "bob.smith_2-x@mail.example.org", "0@localhost"}
	for _, s := range good {
		u, err := ParseUser(s)
		if err != nil || u.String() != s {
			t.Errorf("ParseUser(%q) = %v, %v", s, u, err)
		}
	}
	bad := []string{"", "alice", "Alice@a.example", "alice@A.example", "@a.example", "alice@",
		".alice@a.example", "alice.@a.example", "al ice@a.example", "alice@a..example", "alice@-a.example",
		"alice@a.example.", "alice@a_b.example", "al@ice@a.example", strings.Repeat("a", 65) + "@a.example",
		"alice@" + strings.Repeat("a", 64) + ".example", "ålice@a.example"}
	for _, s := range bad {
		if _, err := ParseUser(s); !errors.Is(err, ErrAddress) {
			t.Errorf("ParseUser(%q) accepted (%v)", s, err)
		}
	}
	if u, err := NormalizeUser("  Alice@A.Example "); err != nil || u.String() != "alice@a.example" {
		t.Errorf("NormalizeUser: %v %v", u, err)
	}
	d, err := ParseDevice("alice@a.example/PHONE_1-x")
	if err != nil || d.Device != "PHONE_1-x" || d.User.Local != "alice" || d.String() != "alice@a.example/PHONE_1-x" {
		t.Fatalf("ParseDevice: %+v %v", d, err)
	}
	for _, s := range []string{"alice@a.example", "alice@a.example/", "alice@a.example/a/b", "alice@a.example/a b",
		"Alice@a.example/X", "alice@a.example/" + strings.Repeat("X", 65)} {
		if _, err := ParseDevice(s); !errors.Is(err, ErrAddress) {
			t.Errorf("ParseDevice(%q) accepted (%v)", s, err)
		}
	}
}

func TestRecoveryKey(t *testing.T) {
	k, err := NewRecoveryKey(&detRand{})
	if err != nil {
		t.Fatal(err)
	}
	text := k.Text()
	if !strings.HasPrefix(text, "HRK1-") || len(strings.Split(text, "-")) != 15 {
		t.Fatalf("text form %q", text)
	}
	for _, variant := range []string{text, strings.ToLower(text), strings.ReplaceAll(text, "-", " "), " " + text + "\n"} {
		got, err := ParseRecoveryKey(variant)
		if err != nil || !got.Equal(k) {
			t.Fatalf("ParseRecoveryKey(%q): %v", variant, err)
		}
	}
	// Every single-character substitution is caught by the checksum or the
	// alphabet check.
	body := []byte(text)
	for i := 5; i < len(body); i++ {
		if body[i] == '-' {
			continue
		}
		typo := bytes.Clone(body)
		typo[i] = map[bool]byte{true: 'B', false: 'A'}[typo[i] == 'A']
		if _, err := ParseRecoveryKey(string(typo)); !errors.Is(err, ErrRecoveryKey) {
			t.Fatalf("typo at %d accepted", i)
		}
	}
	for _, bad := range []string{"", "HRK2-" + text[5:], text[:len(text)-1], text + "A", strings.Replace(text, text[5:6], "1", 1)} {
		if _, err := ParseRecoveryKey(bad); !errors.Is(err, ErrRecoveryKey) {
			t.Errorf("ParseRecoveryKey(%q) accepted", bad)
		}
	}
	_, err = ParseRecoveryKey(string(body[:10]) + flipChar(body[10]) + string(body[11:]))
	if err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("typo error does not mention the checksum: %v", err)
	}
	// The identity key is a deterministic function of the recovery key.
	if !k.Signer().Public().Equal(k.Signer().Public()) {
		t.Fatal("identity derivation not deterministic")
	}
	other, _ := NewRecoveryKey(&detRand{ctr: 5})
	if k.Signer().Public().Equal(other.Signer().Public()) {
		t.Fatal("different recovery keys give the same identity")
	}
	if s := fmt.Sprintf("%v %x %s", k, k, k.Signer()); strings.Contains(s, text[5:9]) || s != "[redacted] [redacted] [redacted]" {
		t.Fatalf("secret printed: %q", s)
	}
}

func flipChar(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

func TestLabeledSignature(t *testing.T) {
	k, _ := NewRecoveryKey(&detRand{})
	s := k.Signer()
	sig := s.SignLabeled("purpose a", []byte("msg"))
	if err := s.Public().VerifyLabeled("purpose a", []byte("msg"), sig); err != nil {
		t.Fatal(err)
	}
	if err := s.Public().VerifyLabeled("purpose b", []byte("msg"), sig); !errors.Is(err, ErrSignature) {
		t.Fatal("signature valid under another label")
	}
	pk, err := ParsePublicKey(s.Public().Bytes())
	if err != nil || !pk.Equal(s.Public()) || !strings.HasPrefix(pk.String(), "hid:") {
		t.Fatalf("public key round trip: %v", err)
	}
	if _, err := ParsePublicKey(make([]byte, 31)); !errors.Is(err, ErrKey) {
		t.Fatal("short identity key accepted")
	}
}
