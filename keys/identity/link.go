package identity

import (
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"strings"

	"hearth/keys/mls/codec"
)

// Errors about device linking.
var (
	ErrLinkCode    = errors.New("identity: invalid link code")
	ErrFingerprint = errors.New("identity: link key does not match the fingerprint")
	ErrBundle      = errors.New("identity: cannot open link bundle")
)

const (
	linkInfoLabel  = "hearth link v1"
	fingerprintLen = 8 // base32 characters: 40 bits
	maxTokenLen    = 32
	bundleFormat   = 2 // carries the identity signing key; 1 carried the recovery secret
)

// LinkPublicKey is a pending device's X25519 link public key.
type LinkPublicKey struct{ b [32]byte }

// ParseLinkPublicKey reads a 32-byte X25519 public key.
func ParseLinkPublicKey(b []byte) (LinkPublicKey, error) {
	if _, err := ecdh.X25519().NewPublicKey(b); err != nil {
		return LinkPublicKey{}, fmt.Errorf("%w: link key: %v", ErrKey, err)
	}
	var k LinkPublicKey
	copy(k.b[:], b)
	return k, nil
}

// Bytes returns the raw key (wire link_public_key).
func (k LinkPublicKey) Bytes() []byte { return append([]byte(nil), k.b[:]...) }

// LinkPrivateKey is the pending device's X25519 link private key. It
// formats as "[redacted]".
type LinkPrivateKey struct{ k *ecdh.PrivateKey }

// GenerateLinkKey draws a link key pair from rand.
func GenerateLinkKey(rand io.Reader) (*LinkPrivateKey, error) {
	b := make([]byte, 32)
	defer clear(b)
	if _, err := io.ReadFull(rand, b); err != nil {
		return nil, fmt.Errorf("identity: reading randomness: %w", err)
	}
	return ParseLinkPrivateKey(b)
}

// ParseLinkPrivateKey reads a key saved with Bytes.
func ParseLinkPrivateKey(b []byte) (*LinkPrivateKey, error) {
	k, err := ecdh.X25519().NewPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w: link private key: %v", ErrKey, err)
	}
	return &LinkPrivateKey{k: k}, nil
}

// Bytes returns the private key for the device's own store.
func (k *LinkPrivateKey) Bytes() []byte { return k.k.Bytes() }

// Public returns the link public key.
func (k *LinkPrivateKey) Public() LinkPublicKey {
	var p LinkPublicKey
	copy(p.b[:], k.k.PublicKey().Bytes())
	return p
}

// Format prints a redaction marker for every verb.
func (*LinkPrivateKey) Format(f fmt.State, _ rune) { io.WriteString(f, "[redacted]") }

// LinkFingerprint is the first 40 bits of SHA-256("hearth link
// fingerprint v1" || pub) in 8 base32 characters. The approving device
// compares it with what the new device shows; a server would have to find
// a second preimage of 40 bits online, while the user waits, without
// having seen the fingerprint (clients send only the token).
func LinkFingerprint(pub LinkPublicKey) string {
	h := sha256.New()
	h.Write([]byte("hearth link fingerprint v1"))
	h.Write(pub.b[:])
	return b32.EncodeToString(h.Sum(nil)[:5])
}

// CheckLinkKey reports whether a link key fetched from the server matches
// the fingerprint read from the new device's screen.
func CheckLinkKey(pub LinkPublicKey, fingerprint string) error {
	if subtle.ConstantTimeCompare([]byte(LinkFingerprint(pub)), []byte(strings.ToUpper(fingerprint))) != 1 {
		return ErrFingerprint
	}
	return nil
}

// FormatLinkCode makes the code a pending device shows: TOKEN-FINGERPRINT,
// uppercase. token is the server's lookup token: 4-32 of A-Z, 0-9 (case
// is not significant; servers must match tokens case-insensitively).
func FormatLinkCode(token string, pub LinkPublicKey) (string, error) {
	token = strings.ToUpper(token)
	if err := checkToken(token); err != nil {
		return "", err
	}
	return token + "-" + LinkFingerprint(pub), nil
}

// ParseLinkCode splits a typed link code into the server token (to send)
// and the fingerprint (to keep and check with CheckLinkKey). Case and
// surrounding spaces are ignored.
func ParseLinkCode(code string) (token, fingerprint string, err error) {
	code = strings.ToUpper(strings.TrimSpace(code))
	token, fingerprint, ok := strings.Cut(code, "-")
	if !ok {
		return "", "", fmt.Errorf("%w: want TOKEN-FINGERPRINT", ErrLinkCode)
	}
	if err := checkToken(token); err != nil {
		return "", "", err
	}
	if len(fingerprint) != fingerprintLen {
		return "", "", fmt.Errorf("%w: fingerprint has %d characters, want %d", ErrLinkCode, len(fingerprint), fingerprintLen)
	}
	for i := 0; i < len(fingerprint); i++ {
		if c := fingerprint[i]; !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7') {
			return "", "", fmt.Errorf("%w: fingerprint character %q is not one of A-Z, 2-7", ErrLinkCode, c)
		}
	}
	return token, fingerprint, nil
}

func checkToken(token string) error {
	if len(token) < 4 || len(token) > maxTokenLen {
		return fmt.Errorf("%w: token has %d characters, want 4..%d", ErrLinkCode, len(token), maxTokenLen)
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return fmt.Errorf("%w: token character %q is not one of A-Z, 0-9", ErrLinkCode, c)
		}
	}
	return nil
}

// Bundle is what an approving device hands a new device: the user's
// identity signing key (never the recovery key, from which it derives;
// docs/decisions/0008-device-secrets.md).
type Bundle struct {
	User     UserAddress
	Identity *Signer
}

func linkInfo(device DeviceAddress) []byte {
	w := codec.NewWriter(nil)
	w.Opaque([]byte(linkInfoLabel))
	w.Opaque([]byte(device.String()))
	return w.Bytes()
}

func linkSuite() (hpke.KEM, hpke.KDF, hpke.AEAD) {
	return hpke.DHKEM(ecdh.X25519()), hpke.HKDFSHA256(), hpke.AES256GCM()
}

// SealBundle encrypts b to the new device's link key with HPKE base mode
// (DHKEM(X25519), HKDF-SHA256, AES-256-GCM); info binds "hearth link v1"
// and the device's address, so the bundle opens only for that device.
func SealBundle(linkPub LinkPublicKey, device DeviceAddress, b *Bundle) ([]byte, error) {
	if b.User != device.User {
		return nil, fmt.Errorf("%w: bundle for %v sealed to a device of %v", ErrBundle, b.User, device.User)
	}
	kem, kdf, aead := linkSuite()
	pk, err := kem.NewPublicKey(linkPub.b[:])
	if err != nil {
		return nil, fmt.Errorf("%w: link key: %v", ErrKey, err)
	}
	w := codec.NewWriter(nil)
	w.Uint8(bundleFormat)
	w.Opaque([]byte(b.User.String()))
	if b.Identity == nil {
		return nil, fmt.Errorf("%w: no identity key", ErrBundle)
	}
	seed := b.Identity.Seed()
	defer clear(seed)
	w.Opaque(seed)
	pt := w.Bytes()
	defer clear(pt)
	sealed, err := hpke.Seal(pk, kdf, aead, linkInfo(device), pt)
	if err != nil {
		return nil, fmt.Errorf("identity: sealing bundle: %w", err)
	}
	return sealed, nil
}

// OpenBundle decrypts a sealed bundle with the link private key of
// device. Any tampering, another device's address or another key gives an
// error wrapping ErrBundle.
func OpenBundle(linkPriv *LinkPrivateKey, device DeviceAddress, sealed []byte) (*Bundle, error) {
	_, kdf, aead := linkSuite()
	sk, err := hpke.NewDHKEMPrivateKey(linkPriv.k)
	if err != nil {
		return nil, fmt.Errorf("%w: link key: %v", ErrKey, err)
	}
	pt, err := hpke.Open(sk, kdf, aead, linkInfo(device), sealed)
	if err != nil {
		return nil, fmt.Errorf("%w: decryption failed", ErrBundle)
	}
	defer clear(pt)
	r := codec.NewReader(pt)
	format, user, secret := r.Uint8(), string(r.Opaque()), r.Opaque()
	if err := r.Done(); err != nil || (format != bundleFormat && format != 1) || len(secret) != 32 {
		return nil, fmt.Errorf("%w: malformed contents", ErrBundle)
	}
	u, err := ParseUser(user)
	if err != nil || u != device.User {
		return nil, fmt.Errorf("%w: bundle is for %q, not %v", ErrBundle, user, device.User)
	}
	b := &Bundle{User: u}
	if format == 1 { // from a device of an older version: the recovery secret
		var rk RecoveryKey
		copy(rk.secret[:], secret)
		b.Identity = rk.Signer()
		clear(rk.secret[:])
		return b, nil
	}
	b.Identity = newSigner(secret)
	return b, nil
}
