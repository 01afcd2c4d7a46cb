package identity

import (
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrRecoveryKey is wrapped by every recovery key parsing error.
var ErrRecoveryKey = errors.New("identity: invalid recovery key")

const (
	recoveryPrefix   = "HRK1"
	recoveryChecksum = 3  // bytes of SHA-256 appended before encoding
	recoveryGroup    = 4  // characters per group
	recoveryChars    = 56 // base32 of 32+3 bytes
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// RecoveryKey is the 32-byte secret from which a user's identity key is
// derived. It formats as "[redacted]"; Text gives the form shown to the
// user, once.
type RecoveryKey struct{ secret [32]byte }

// NewRecoveryKey draws a fresh recovery secret from rand.
func NewRecoveryKey(rand io.Reader) (RecoveryKey, error) {
	var k RecoveryKey
	if _, err := io.ReadFull(rand, k.secret[:]); err != nil {
		return RecoveryKey{}, fmt.Errorf("identity: reading randomness: %w", err)
	}
	return k, nil
}

// Format prints a redaction marker for every verb.
func (RecoveryKey) Format(f fmt.State, _ rune) { io.WriteString(f, "[redacted]") }

func recoverySum(secret []byte) []byte {
	h := sha256.New()
	h.Write([]byte("hearth recovery key v1"))
	h.Write(secret)
	return h.Sum(nil)[:recoveryChecksum]
}

// Text is "HRK1-" followed by 14 groups of 4 base32 characters encoding
// the secret and a 3-byte checksum.
func (k RecoveryKey) Text() string {
	raw := append(k.secret[:], recoverySum(k.secret[:])...)
	enc := b32.EncodeToString(raw)
	var sb strings.Builder
	sb.WriteString(recoveryPrefix)
	for i := 0; i < len(enc); i += recoveryGroup {
		sb.WriteByte('-')
		sb.WriteString(enc[i : i+recoveryGroup])
	}
	return sb.String()
}

// ParseRecoveryKey reads the Text form. Case, spaces and dashes are
// ignored; a wrong character or a failed checksum is reported clearly.
func ParseRecoveryKey(text string) (RecoveryKey, error) {
	s := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '\t', '\n', '\r':
			return -1
		}
		return r
	}, strings.ToUpper(text))
	if !strings.HasPrefix(s, recoveryPrefix) {
		return RecoveryKey{}, fmt.Errorf("%w: does not start with %s-", ErrRecoveryKey, recoveryPrefix)
	}
	s = s[len(recoveryPrefix):]
	if len(s) != recoveryChars {
		return RecoveryKey{}, fmt.Errorf("%w: %d characters after %s, want %d", ErrRecoveryKey, len(s), recoveryPrefix, recoveryChars)
	}
	for i, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7') {
			return RecoveryKey{}, fmt.Errorf("%w: character %d (%q) is not one of A-Z, 2-7", ErrRecoveryKey, i+1, c)
		}
	}
	raw, err := b32.DecodeString(s)
	if err != nil {
		return RecoveryKey{}, fmt.Errorf("%w: %v", ErrRecoveryKey, err)
	}
	var k RecoveryKey
	copy(k.secret[:], raw[:32])
	if subtle.ConstantTimeCompare(recoverySum(k.secret[:]), raw[32:]) != 1 {
		return RecoveryKey{}, fmt.Errorf("%w: checksum does not match (a character is mistyped)", ErrRecoveryKey)
	}
	return k, nil
}

// Signer derives the identity key: Ed25519 with the seed
// HKDF-SHA256(recovery secret, info "hearth identity key v1").
func (k RecoveryKey) Signer() *Signer {
	seed, err := hkdf.Key(sha256.New, k.secret[:], nil, "hearth identity key v1", 32)
	if err != nil {
		panic("identity: HKDF: " + err.Error()) // cannot fail for 32 bytes
	}
	defer clear(seed)
	return newSigner(seed)
}

// Equal compares two recovery keys in constant time.
func (k RecoveryKey) Equal(o RecoveryKey) bool {
	return subtle.ConstantTimeCompare(k.secret[:], o.secret[:]) == 1
}
