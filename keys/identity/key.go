package identity

import (
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"

	"hearth/keys/mls/codec"
)

// Errors for keys and signatures.
var (
	ErrKey       = errors.New("identity: invalid key")
	ErrSignature = errors.New("identity: invalid signature")
)

// PublicKey is a user's Ed25519 identity public key.
type PublicKey struct{ b [ed25519.PublicKeySize]byte }

// ParsePublicKey reads a 32-byte Ed25519 public key.
func ParsePublicKey(b []byte) (PublicKey, error) {
	var k PublicKey
	if len(b) != len(k.b) {
		return PublicKey{}, fmt.Errorf("%w: identity key is %d bytes, want %d", ErrKey, len(b), len(k.b))
	}
	copy(k.b[:], b)
	return k, nil
}

// Bytes returns the raw 32-byte key (wire identity_key).
func (k PublicKey) Bytes() []byte { return append([]byte(nil), k.b[:]...) }

// Equal compares in constant time.
func (k PublicKey) Equal(o PublicKey) bool { return subtle.ConstantTimeCompare(k.b[:], o.b[:]) == 1 }

// IsZero reports whether k is unset.
func (k PublicKey) IsZero() bool { return k == PublicKey{} }

// String is "hid:" and the unpadded base64url key.
func (k PublicKey) String() string { return "hid:" + base64.RawURLEncoding.EncodeToString(k.b[:]) }

// Signer holds an identity private key. It formats as "[redacted]".
type Signer struct {
	priv ed25519.PrivateKey
	pub  PublicKey
}

func newSigner(seed []byte) *Signer {
	priv := ed25519.NewKeyFromSeed(seed)
	s := &Signer{priv: priv}
	copy(s.pub.b[:], priv.Public().(ed25519.PublicKey))
	return s
}

// SignerFromSeed returns the identity signer whose Ed25519 seed is seed
// (what Seed returned).
func SignerFromSeed(seed []byte) (*Signer, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: identity key seed is %d bytes, want %d", ErrKey, len(seed), ed25519.SeedSize)
	}
	return newSigner(seed), nil
}

// Seed returns a copy of the private key's 32-byte seed, for the device's
// store and for sealing to a linked device. Callers clear it after use.
func (s *Signer) Seed() []byte { return append([]byte(nil), s.priv.Seed()...) }

// Public returns the identity public key.
func (s *Signer) Public() PublicKey { return s.pub }

// Format prints a redaction marker for every verb.
func (*Signer) Format(f fmt.State, _ rune) { io.WriteString(f, "[redacted]") }

// labeled is the signed message: opaque label<V> || opaque content<V>, so
// a signature for one purpose never verifies for another.
func labeled(label string, content []byte) []byte {
	w := codec.NewWriter(nil)
	w.Opaque([]byte(label))
	w.Opaque(content)
	return w.Bytes()
}

// SignLabeled signs content under a domain-separation label.
func (s *Signer) SignLabeled(label string, content []byte) []byte {
	return ed25519.Sign(s.priv, labeled(label, content))
}

// VerifyLabeled checks a SignLabeled signature.
func (k PublicKey) VerifyLabeled(label string, content, sig []byte) error {
	if !ed25519.Verify(ed25519.PublicKey(k.b[:]), labeled(label, content), sig) {
		return fmt.Errorf("%w: %q by %v", ErrSignature, label, k)
	}
	return nil
}
